"""Callbacks for ``Model.fit``."""
from .base import Callback, CallbackList, History, ProgressBar
from .checkpoint import BackupAndRestore, ModelCheckpoint
from .loggers import CSVLogger
from .monitoring import EarlyStopping, LearningRateScheduler, ReduceLROnPlateau, TerminateOnNaN
from .tracker import RunTracker, list_runs, load_run
