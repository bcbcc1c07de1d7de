"""The prediction server (FastAPI + uvicorn) and its web page.

``cnnkit serve RUN`` runs :func:`create_app` with uvicorn. Needs the ``serve`` extra
(``pip install cnnkit[serve]``: fastapi, uvicorn, python-multipart).

Example:
    >>> from cnnkit.serve import create_app
    >>> app = create_app("runs/digits")  # doctest: +SKIP
"""
from cnnkit.serve.app import ServeConfig, create_app, server_options
from cnnkit.serve.batching import BatchConfig, DynamicBatcher
from cnnkit.serve.decode import RequestError, ServeLimits

__all__ = ["BatchConfig", "DynamicBatcher", "RequestError", "ServeConfig", "ServeLimits",
           "create_app", "server_options"]
