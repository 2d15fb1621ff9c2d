"""Layers, named as in Keras. Inputs are channels-first: (N, C, H, W)."""
from .activation import ELU, LeakyReLU, Maxout, ReLU, Softmax
from .base import Input, InputLayer, InputSpec, Layer, SymbolicTensor
from .conv import (Conv, Conv1D, Conv2D, Conv3D, Convolution1D, Convolution2D, Convolution3D, DepthwiseConv,
                   DepthwiseConv1D, DepthwiseConv2D, SeparableConv, SeparableConv1D, SeparableConv2D,
                   SeparableConvolution1D, SeparableConvolution2D)
from .core import Activation, Dense, Dropout, Flatten, Lambda, Reshape
from .merge import Add, Average, Concatenate, Maximum, Multiply, Subtract
from .norm import BatchNormalization
from .pool import (AveragePooling1D, AveragePooling2D, AveragePooling3D, AvgPool1D, AvgPool2D, AvgPool3D,
                   GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D, GlobalAvgPool1D,
                   GlobalAvgPool2D, GlobalAvgPool3D, GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D,
                   GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D, L2Pool1D, L2Pool2D, L2Pool3D,
                   MaxPool1D, MaxPool2D, MaxPool3D, MaxPooling1D, MaxPooling2D, MaxPooling3D)
from .reshaping import ZeroPadding1D, ZeroPadding2D, ZeroPadding3D
