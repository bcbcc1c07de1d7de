"""A torchrun worker for the tests: ``cnnkit.train.train`` on digits, one rank SIGKILLed on cue.

Run as ``python -m torch.distributed.run --standalone --nproc-per-node 2 torchrun_worker.py
--out RUN --epochs 3 --kill-epoch 3``: every rank trains; at the start of ``--kill-epoch`` all
ranks meet at a barrier (so rank 0 has written the previous epoch's checkpoint), then rank 1
kills itself with SIGKILL, as an out-of-memory killer or a lost machine would.
"""
from __future__ import annotations

import argparse
import os
import signal

from cnnkit.train import distributed
from cnnkit.train.callbacks import Callback
from cnnkit.train.config import TrainConfig
from cnnkit.train.pipeline import train


class KillRankAtEpoch(Callback):
    """SIGKILL rank ``rank`` when epoch ``epoch`` begins (after a barrier of all ranks)."""

    def __init__(self, rank: int, epoch: int):
        self.rank, self.epoch = rank, epoch

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.epoch:
            distributed.barrier()
            if trainer.dist.rank == self.rank:
                os.kill(os.getpid(), signal.SIGKILL)


# Without batch norm: BN's running statistics are per process (no SyncBN), so only a net
# without it trains to the same weights in 2 processes as in one.
NO_BN_MODEL = "conv(16,3,padding=same) relu conv(32,3,padding=same) relu maxpool(2) fc(64) relu fc(10)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--kill-epoch", type=int, default=3)
    args = parser.parse_args()
    config = TrainConfig(model=NO_BN_MODEL, epochs=args.epochs, batch_size=64, device="cpu",
                         precision="fp32",
                         out=args.out)
    try:
        train(config, callbacks=[KillRankAtEpoch(1, args.kill_epoch)], progress=False)
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    main()
