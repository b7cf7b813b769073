"""Documents: files -> pages -> lines, and recognised pages -> output files.

- `pages`: expand inputs (folders, lists, PDFs, multi-page TIFFs) into page images
- `segment`, `linegeom`: cut a page into text regions and lines with polygons and baselines
- `pipeline`: the batch path over pages (load, segment, recognise, write, resume)
- `transcribe`: the `hwr transcribe` command's configuration and line-mode path
- `writers/`: txt, JSON, PAGE XML and ALTO serialisation (one module per format)
- `page_eval`: page-level scoring (`hwr eval --pages`)
"""
