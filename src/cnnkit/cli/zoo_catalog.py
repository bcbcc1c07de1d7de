"""The model zoo's names, default input sizes and descriptions, for ``cnnkit models`` without torch.

The registry (:mod:`cnnkit.models.registry`) is the truth: registering a model imports its zoo
module, which imports torch (1–3 s), and ``cnnkit models`` only prints this table. The test
``tests/cli/test_models_cli.py`` compares it with ``list_models()`` and prints the entries to
paste when a model is added or a description changes.
"""
from __future__ import annotations

# (name, default (H, W), description), in name order: list_models() as tuples.
ZOO = (
    ('airbench', (32, 32),
     'airbench-style fast CIFAR net: 2x2 whitening conv, three conv-BN-GELU blocks '
     '(64/256/256), ~94% CIFAR-10 in seconds on a GPU; inputs >= 9x9'),
    ('alexnet', (224, 224),
     "AlexNet (Krizhevsky et al. 2012), torchvision's version; inputs >= 63x63"),
    ('densenet121', (224, 224),
     'DenseNet-121 (Huang et al. 2016), growth 32, blocks [6, 12, 24, 16]; '
     "stem='small' (auto for inputs <= 64) for 32x32 images; inputs >= 29x29 with the "
     'imagenet stem'),
    ('googlenet', (224, 224),
     "GoogLeNet / Inception v1 (Szegedy et al. 2014), torchvision's version; "
     'aux_logits=True adds the auxiliary classifiers'),
    ('keras_mnist', (28, 28),
     'The Keras/PyTorch MNIST example CNN: conv 32, conv 64, max pool, dropout, fc '
     '128; 28x28'),
    ('lenet5', (32, 32),
     'LeNet-5 (LeCun et al. 1998): two 5x5 convs with subsampling, fc 120-84; 32x32 '
     '(28x28 MNIST gets padding 2)'),
    ('nin', (224, 224),
     'Network in Network (Lin et al. 2013): mlpconv blocks of 1x1 convs, global '
     "average pooling instead of fc; layout='small' (auto for inputs <= 64) is the "
     'CIFAR-10 net, the imagenet layout needs inputs >= 67x67'),
    ('resnet18', (224, 224),
     "ResNet-18 (He et al. 2015), basic blocks [2, 2, 2, 2]; stem='small' (auto for "
     'inputs <= 64) for 32x32 images'),
    ('resnet34', (224, 224),
     "ResNet-34 (He et al. 2015), basic blocks [3, 4, 6, 3]; stem='small' (auto for "
     'inputs <= 64) for 32x32 images'),
    ('resnet50', (224, 224),
     "ResNet-50 (He et al. 2015), bottleneck blocks [3, 4, 6, 3]; stem='small' (auto "
     'for inputs <= 64) for 32x32 images'),
    ('vgg11', (224, 224),
     'VGG-11 (Simonyan & Zisserman 2014), 3x3 convs; inputs >= 32x32'),
    ('vgg11_bn', (224, 224),
     'VGG-11 (Simonyan & Zisserman 2014), 3x3 convs, batch norm after every conv; '
     'inputs >= 32x32'),
    ('vgg16', (224, 224),
     'VGG-16 (Simonyan & Zisserman 2014), 3x3 convs; inputs >= 32x32'),
    ('vgg16_bn', (224, 224),
     'VGG-16 (Simonyan & Zisserman 2014), 3x3 convs, batch norm after every conv; '
     'inputs >= 32x32'),
    ('zfnet', (224, 224),
     'ZFNet (Zeiler & Fergus 2013): AlexNet with 7x7/2 first filters; inputs >= 53x53'),
)
