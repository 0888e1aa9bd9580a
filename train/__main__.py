"""`python -m edgemed.train ...`: the train command, as torchrun starts it on every process
(`torchrun --nproc_per_node N -m edgemed.train --model gru --data ... --out ...`)."""

from edgemed.cli.train import train_command

if __name__ == "__main__":
    train_command(prog_name="edgemed train")
