"""Callbacks for ``Model.fit``."""
from .base import Callback, CallbackList, History, ProgressBar
