"""Seeing inside a network: summary and receptive fields, filters, feature maps, classic
kernels, convolution as a matrix, saliency and Grad-CAM, mistakes, and 1-D/2-D convolution of
signals. These functions return numbers; ``cnnkit.viz`` draws them.
"""
from cnnkit.inspect.conv_matrix import conv_as_matrix
from cnnkit.inspect.feature_maps import FeatureMap, class_probabilities, feature_maps
from cnnkit.inspect.filters import conv_layers, filter_grid
from cnnkit.inspect.kernels import KERNELS, apply_kernel, kernel_bank_conv, kernel_names
from cnnkit.inspect.mistakes import (confusion_matrix, most_confident_mistakes,
                                     per_class_accuracy)
from cnnkit.inspect.receptive_field import (RFInfo, UnitRegion, empirical_receptive_field,
                                            receptive_fields, unit_region)
from cnnkit.inspect.saliency import grad_cam, saliency
from cnnkit.inspect.signals import convolve1d, convolve2d
from cnnkit.inspect.summary import LayerRow, ModelSummary, summary

__all__ = [
    "FeatureMap", "KERNELS", "LayerRow", "ModelSummary", "RFInfo", "UnitRegion", "apply_kernel",
    "class_probabilities", "confusion_matrix", "conv_as_matrix", "conv_layers", "convolve1d",
    "convolve2d", "empirical_receptive_field", "feature_maps", "filter_grid", "grad_cam",
    "kernel_bank_conv", "kernel_names", "most_confident_mistakes", "per_class_accuracy",
    "receptive_fields", "saliency", "summary", "unit_region",
]
