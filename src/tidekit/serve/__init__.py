"""An OpenAI-compatible chat server over any tidekit backend (``tidekit serve``).

``create_app(backend, name)`` builds the FastAPI app; :func:`serve` loads a backend and runs it
with uvicorn. Any OpenAI client (or tidekit's own ``openai`` backend) can then talk to a local
model, with or without a LoRA adapter.
"""

from tidekit.serve._app import create_app
from tidekit.serve._run import ServeConfig, serve

__all__ = ["ServeConfig", "create_app", "serve"]
