"""Run folders of the dense tasks with random weights, written directly (no training): the
export and serve tests of localise / segment / detect runs share them."""
from __future__ import annotations

import torch

from cnnkit import run as rf
from cnnkit.data.normalization import Normalization
from cnnkit.tasks.build import default_for

CLASSES = {"localize": ["cat", "dog", "eel"], "segment": ["background", "a", "b", "c"],
           "detect": ["cat", "dog", "eel"]}


def write_task_run(folder, task: str):
    """A 32x32 grey run folder of ``task`` with random weights and a real normalisation."""
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    model = default_for(task, "32x32x1", len(CLASSES[task]))
    if task == "segment":  # wider weights than the init's, so that the mask has several classes
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, 0.3)
    images = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    rf.save_weights(model, folder / rf.WEIGHTS_FILE)
    rf.write_json(folder / rf.MODEL_FILE, rf.model_metadata(
        model, CLASSES[task], Normalization.fit(images), (1, 32, 32), task=task))
    rf.write_json(folder / rf.CONFIG_FILE, {})
    return folder
