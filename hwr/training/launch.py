"""torchrun for `hwr train --nproc N` (`python -m hwr.training.launch`, torchrun's own arguments).

torchrun's own entry point answers a training process that died (killed for memory, a kill -9)
with its error table and a Python traceback; the user is told here, in one line, which process
ended and how, and how to go on.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    try:
        run(parse_args(argv))  # not torch.distributed.run.main: its @record prints the table and re-raises
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        said = f"hwr train: training process {rank} (pid {failure.pid})"
        if failure.exitcode > 0:  # an error it said itself (bad data, a full disk)
            print(f"{said} stopped with exit code {failure.exitcode} (its message is above); the others were "
                  "stopped", file=sys.stderr)
            return failure.exitcode
        memory = " (out of memory?)" if failure.exitcode == -9 else ""
        print(f"{said} was killed by {failure.signal_name()}{memory}; the others were stopped. --resume continues "
              "from the run's last checkpoint (last/, saved at each validation)", file=sys.stderr)
        return 128 - failure.exitcode
    return 0


if __name__ == "__main__":
    sys.exit(main())
