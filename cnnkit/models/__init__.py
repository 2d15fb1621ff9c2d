"""Models: Sequential, functional Model, training, summary and saving."""
from .model import Model
from .saving import load_model, model_from_json, named_weights, restore_training_state
from .sequential import Sequential
from . import zoo
from .cross_validation import cross_validate
