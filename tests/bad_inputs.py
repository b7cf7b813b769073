"""Generators of the bad inputs that once crashed a batch or lost its outputs (issue 21).

Each writes a small file into a test's tmp dir; the unit tests and tests/test_fuzz_inputs.py
share them, so a bad input found once is tried everywhere.
"""
from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

from PIL import Image


def huge_tiff_header(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """An uncompressed grayscale TIFF whose header claims width x height pixels (it holds none):
    a decompression bomb as a hostile user would send it, a few hundred bytes on disk."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 8), (278, 4, height), (279, 4, width * height)]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        # LONG values fill the 4-byte value field; SHORT values are left-justified in it.
        ifd += struct.pack("<HHII", tag, kind, 1, value) if kind == 4 else struct.pack("<HHIHH", tag, kind, 1, value, 0)
    ifd += struct.pack("<I", 0)  # no next IFD
    path.write_bytes(b"II*\x00" + struct.pack("<I", 16) + b"\x00" * 8 + ifd)
    return path


def multipage_tiff_bytes(frames: int = 3, size: tuple[int, int] = (200, 100)) -> bytes:
    pages = [Image.new("L", size, 40 + 60 * k) for k in range(frames)]
    buffer = io.BytesIO()
    pages[0].save(buffer, format="TIFF", save_all=True, append_images=pages[1:])
    return buffer.getvalue()


def truncated_multipage_tiff(path: Path) -> Path:
    """A 3-page TIFF cut in half: the IFD chain points past the end of the file, and counting
    its pages raises TypeError ("Missing dimensions") inside Pillow."""
    data = multipage_tiff_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def short_multipage_tiff(path: Path) -> Path:
    """A 3-page TIFF missing its last bytes: the pages count, the last one does not decode."""
    data = multipage_tiff_bytes()
    path.write_bytes(data[:-10])
    return path


def damaged_tags_multipage_tiff(path: Path) -> Path:
    """A 2-page TIFF whose second page's header claims 65,535 tags: Pillow warns "Corrupt EXIF
    data" both when it seeks to that page and when it loads it (TiffImagePlugin re-reads them)."""
    data = bytearray(multipage_tiff_bytes(frames=2))
    first = struct.unpack("<I", data[4:8])[0]
    after_first = first + 2 + 12 * struct.unpack("<H", data[first:first + 2])[0]
    second = struct.unpack("<I", data[after_first:after_first + 4])[0]
    data[second:second + 2] = struct.pack("<H", 0xFFFF)
    path.write_bytes(bytes(data))
    return path


def tiff_whose_second_page_is_past_its_end(path: Path) -> Path:
    """A 2-page TIFF whose link to its second page points past the end of the file: Pillow
    counts two pages, and seeking to the second raises TypeError ("Missing dimensions")."""
    data = bytearray(multipage_tiff_bytes(frames=2))
    first = struct.unpack("<I", data[4:8])[0]
    link = first + 2 + 12 * struct.unpack("<H", data[first:first + 2])[0]
    data[link:link + 4] = struct.pack("<I", len(data) + 1000)
    path.write_bytes(bytes(data))
    return path


def not_an_image(path: Path) -> Path:
    path.write_bytes(b"this is not an image at all")
    return path


def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def broken_pdf(path: Path) -> Path:
    path.write_bytes(b"%PDF-1.4 truncated")
    return path


def pageless_pdf(path: Path) -> Path:
    """A well-formed PDF whose page tree is empty (PDFium refuses it with the error code "success")."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    pdf.save(str(path))
    pdf.close()
    return path


def password_protected_pdf(path: Path) -> Path:
    """A one-page PDF under the standard security handler whose user password is not empty:
    PDFium refuses it with FPDF_ERR_PASSWORD before reading any content."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] >>",
               f"<< /Filter /Standard /V 1 /R 2 /O <{'11' * 32}> /U <{'22' * 32}> /P -4 >>"]
    data = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(data))
        data += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(data)
    data += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    data += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    file_id = "<" + "0123456789abcdef" * 2 + ">"
    data += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Encrypt 4 0 R /ID [{file_id}{file_id}] >>\n"
             f"startxref\n{xref}\n%%EOF\n").encode()
    path.write_bytes(data)
    return path


def damaged_exif_jpeg(path: Path, size: tuple[int, int] = (80, 50)) -> Path:
    """A JPEG whose EXIF block claims more tags than it holds (Pillow warns "Corrupt EXIF data")."""
    exif = Image.Exif()
    exif[0x010E] = "a description long enough to be stored out of line"
    buffer = io.BytesIO()
    Image.new("L", size, 200).save(buffer, "JPEG", exif=exif.tobytes())
    data = bytearray(buffer.getvalue())
    header = data.find(b"Exif\x00\x00") + 6  # the TIFF header: byte order, 42, offset of IFD0 (8)
    data[header + 8 + 1 if data[header] == ord("M") else header + 8] = 0x30  # IFD0's entry count
    path.write_bytes(bytes(data))
    return path


def png_with_late_exif(path: Path, image: Image.Image, orientation: int = 6) -> Path:
    """A PNG whose eXIf chunk (EXIF orientation) follows its pixel data, as some phones and
    editors write it: a reader of the header alone does not see the turn."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "PNG", exif=exif)
    data, chunks, at = buffer.getvalue(), [], 8
    while at < len(data):
        length = struct.unpack(">I", data[at:at + 4])[0]
        chunks.append((data[at + 4:at + 8], data[at:at + 12 + length]))
        at += 12 + length
    exif_chunk = next(chunk for kind, chunk in chunks if kind == b"eXIf")
    rest = [chunk for kind, chunk in chunks if kind != b"eXIf"]
    path.write_bytes(data[:8] + b"".join(rest[:-1]) + exif_chunk + rest[-1])  # just before IEND
    return path


def latin1_text(path: Path, text: str = "caf\xe9 cr\xe8me\n") -> Path:
    """A text file in Latin-1: invalid UTF-8 where a UTF-8 list or ground-truth file is expected."""
    path.write_bytes(text.encode("latin-1"))
    return path


def huge_pdf(path: Path, width_pt: float = 14400, height_pt: float = 14400) -> Path:
    """A one-page blank PDF of the largest page size PDF allows (200 x 200 inches)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    pdf.new_page(width_pt, height_pt)
    pdf.save(str(path))
    pdf.close()
    return path


def zip_with_a_damaged_member(path: Path, good: dict[str, bytes], damaged: str, data: bytes) -> Path:
    """A zip (members stored, not compressed) whose member `damaged` has one byte of `data`
    flipped, as a bad disk or a cut download leaves it: its CRC check fails when it is read."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, content in {**good, damaged: data}.items():
            zf.writestr(name, content)
    raw = bytearray(path.read_bytes())
    raw[raw.rfind(data) + len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


def zip_with_patched_member(path: Path, good: dict[str, bytes], member: str, data: bytes, *,
                            flags: int = 0, method: int | None = None, name: bytes | None = None) -> Path:
    """A zip (stored) whose `member` has its headers patched as other archivers write them:
    `flags` OR-ed in (0x1: encrypted, as `zip -P` makes it; 0x800: names are UTF-8), the
    compression `method` set (9: Deflate64, Windows Explorer's for large zips), or its name's
    bytes replaced by `name` (same length: a Latin-1 name under the UTF-8 flag)."""
    import struct

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for member_name, content in {**good, member: data}.items():
            zf.writestr(member_name, content)
    raw = bytearray(path.read_bytes())
    encoded = member.encode("ascii")
    # Local header: flags at +6, method at +8, name at +30; central header: +8, +10, +46.
    for signature, flag_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        start = 0
        while (start := raw.find(signature, start)) >= 0:
            if raw[start + name_at: start + name_at + len(encoded)] == encoded:
                (old_flags,) = struct.unpack_from("<H", raw, start + flag_at)
                struct.pack_into("<H", raw, start + flag_at, old_flags | flags)
                if method is not None:
                    struct.pack_into("<H", raw, start + flag_at + 2, method)
                if name is not None:
                    raw[start + name_at: start + name_at + len(encoded)] = name
            start += 4
    path.write_bytes(bytes(raw))
    return path


def arpa_with_count(path: Path, order: int, count: str) -> Path:
    """A whole character bigram ARPA file whose header declares `ngram order=count` instead of
    the n-grams it holds (a negative count crashed KenLM, and the process with it)."""
    declared = {1: "4", 2: "2"}
    declared[order] = count
    path.write_text("\n".join([
        "\\data\\", *(f"ngram {n}={c}" for n, c in declared.items()), "",
        "\\1-grams:", "-99\t<s>\t-0.3", "-0.5\t</s>", "-1\t<unk>", "-0.5\ta\t-0.2", "",
        "\\2-grams:", "-0.3\t<s> a", "-0.3\ta </s>", "", "\\end\\", ""]), encoding="utf-8")
    return path


def deeply_nested_json(path: Path, depth: int = 100_000) -> Path:
    """A JSON object nested `depth` levels deep: well-formed, but Python's json parser gives up
    with a RecursionError (not the JSONDecodeError its callers catch)."""
    path.write_text('{"a": ' * depth + "1" + "}" * depth, encoding="utf-8")
    return path


def deeply_nested_yaml(path: Path, depth: int = 5_000) -> Path:
    """A YAML mapping whose value is a list nested `depth` levels deep (PyYAML composes by recursion)."""
    path.write_text("a: " + "[" * depth + "]" * depth + "\n", encoding="utf-8")
    return path
