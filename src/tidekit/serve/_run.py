"""Load a backend and run the server with uvicorn until interrupted."""

from __future__ import annotations

from pydantic import Field

from tidekit._config import StrictModel
from tidekit.backends._factory import load_backend
from tidekit.backends._protocol import BackendConfig

__all__ = ["ServeConfig", "serve"]


class ServeConfig(StrictModel):
    """What ``tidekit serve`` runs."""

    backend: BackendConfig = Field(default_factory=BackendConfig, description="The model to serve.")
    name: str | None = Field(default=None, description="Model name clients ask for; default: the alias.")
    host: str = Field(default="127.0.0.1", description="Interface to listen on (0.0.0.0 exposes it).")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port.")
    max_tokens: int = Field(default=256, ge=1, le=32768, description="Reply length when a request sets none.")
    temperature: float = Field(default=1.0, ge=0.0, le=2.0,
                               description="Temperature when a request sets none: 1.0 as OpenAI's API (sampled, "
                                           "a fresh seed per request unless it sends one); 0 makes greedy, "
                                           "reproducible replies the default.")


def serve(config: ServeConfig) -> None:
    """Load the model and serve it (blocks until Ctrl-C)."""
    import uvicorn

    from tidekit.serve._app import create_app

    backend = load_backend(config.backend)
    name = config.name or backend.identity.alias
    app = create_app(backend, name, default_max_tokens=config.max_tokens,
                     default_temperature=config.temperature)
    try:
        uvicorn.run(app, host=config.host, port=config.port, log_level="info")
    finally:
        backend.close()
