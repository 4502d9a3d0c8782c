"""HTTP service: the champion model behind FastAPI (``oncopersistnet serve``)."""

from oncopersistnet.serving.app import ServiceConfig, create_app, make_server

__all__ = ["ServiceConfig", "create_app", "make_server"]
