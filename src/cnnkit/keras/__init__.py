"""Keras' names on top of cnnkit, so a Keras tutorial runs by changing only its imports.

===========================================  ==============================================
Keras                                        cnnkit
===========================================  ==============================================
``from tensorflow.keras.models import ...``  ``from cnnkit.keras.models import Sequential``
``from tensorflow.keras.layers import ...``  ``from cnnkit.keras.layers import Conv2D, ...``
``from tensorflow.keras.utils import ...``   ``from cnnkit.keras.utils import to_categorical``
``from keras import layers, models``         ``from cnnkit.keras import layers, models``
===========================================  ==============================================

Input shapes are written H×W×C as in Keras; tensors inside stay PyTorch's (N, C, H, W), and
``fit``/``predict`` accept NumPy arrays in either layout.
"""
from cnnkit.keras import layers, models, utils
from cnnkit.keras.models import Sequential

__all__ = ["Sequential", "layers", "models", "utils"]
