"""Transfer learning: start from a trained network, replace the classifier, freeze, fine-tune.

* :func:`transfer` — load weights, adapt input channels, new head, freeze (one call);
* :func:`load_pretrained` — weights from a run folder, safetensors/.pt file (torchvision names)
  or a module, with a :class:`LoadReport` of what matched and what was skipped;
* :func:`replace_head`, :func:`adapt_input_channels`;
* :func:`freeze` / :func:`unfreeze` / :func:`trainable_summary`, by :func:`layer_groups`;
* :func:`discriminative_param_groups`, :class:`GradualUnfreezing` (a Trainer callback),
  :func:`finetune` (``cnnkit finetune``);
* :func:`extract_features` (``cnnkit embed``).

Example:
    >>> from cnnkit.models import create
    >>> model = transfer(create("resnet18", num_classes=10, input_size=32), 4,
    ...                  freeze="all_but_head")
    >>> trainable_summary(model).trainable
    2052
"""
from cnnkit.transfer_learning.adapt import adapt_conv_weight, adapt_input_channels
from cnnkit.transfer_learning.embed import extract_features, penultimate, save_features
from cnnkit.transfer_learning.finetune import (FineTuneResult, FineTuneSettings,
                                               GradualUnfreezing, discriminative_param_groups,
                                               finetune)
from cnnkit.transfer_learning.freeze import (TrainableSummary, freeze, trainable_summary,
                                             unfreeze)
from cnnkit.transfer_learning.groups import LayerGroup, layer_groups
from cnnkit.transfer_learning.head import head_path, replace_head
from cnnkit.transfer_learning.transfer import pretrained_model, transfer
from cnnkit.transfer_learning.weights import LoadReport, load_pretrained, read_state_dict

__all__ = [
    "FineTuneResult", "FineTuneSettings", "GradualUnfreezing", "LayerGroup", "LoadReport",
    "TrainableSummary", "adapt_conv_weight", "adapt_input_channels", "discriminative_param_groups",
    "extract_features", "finetune", "freeze", "head_path", "layer_groups", "load_pretrained",
    "penultimate", "pretrained_model", "read_state_dict", "replace_head", "save_features",
    "trainable_summary", "transfer", "unfreeze",
]
