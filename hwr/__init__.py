"""hwr: handwriting text recognition (CNN/MDLSTM + BLSTM + CTC line recognizer)."""
import os

__version__ = "0.1.0"

# Gradio and huggingface_hub phone home at import/launch unless told not to; set both before
# anything in this package can import gradio.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def __getattr__(name):  # lazy: `import hwr` stays cheap for the CLI's --help
    if name == "Recognizer":
        from hwr.recognition.model import Recognizer

        return Recognizer
    raise AttributeError(name)


__all__ = ["Recognizer", "__version__"]
