"""Time one full trial and compare it with the machine's dense matmul throughput on the model's shapes.

Prints seconds for the teacher and the student (with and without per-step alignment), their ratio,
and the achieved GFLOP/s of the whole trial against plain matrix multiplies of the same shapes.

    python benchmarks/trial_speed.py --data-dir DIR [--threads 2] [--epochs 5] [--teacher-epochs 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from sublim.trainable import Trial, TrialConfig, TrialData, load_mnist, train_teacher
from sublim.core.schema import IMAGE_PIXELS
from sublim.trainable.model import layer_shapes


def step_macs(config: TrialConfig, rows: int) -> int:
    """Multiply-adds of one forward and backward pass on `rows` images: forward, weight gradients,
    and input gradients of every layer but the first (the images need no gradient)."""
    forward = sum(d_out * d_in for (d_out, d_in), _ in layer_shapes(config))
    return rows * (2 * forward + forward - config.hidden * IMAGE_PIXELS)


def trial_flops(config: TrialConfig, track_alignment: bool) -> tuple[float, float]:
    """(teacher, student) floating-point operations of one trial, counting the matrix multiplies."""
    forward = sum(d_out * d_in for (d_out, d_in), _ in layer_shapes(config))
    test_images = 10_000
    teacher = config.teacher_epochs * step_macs(config, config.train_size) + test_images * forward
    per_epoch = step_macs(config, config.noise_count)
    if track_alignment:
        steps = -(-config.noise_count // config.batch_size)
        per_epoch += step_macs(config, steps * config.probe_batch_size)
    student = (config.epochs * per_epoch + config.noise_count * forward  # teacher logits on the noise
               + (config.epochs + 1) * test_images * forward)          # accuracy before and after each epoch
    return 2.0 * teacher, 2.0 * student


def matmul_gflops(config: TrialConfig, repeats: int = 30) -> float:
    """Throughput of the dense matrix multiplies one training step of the model performs."""
    b = config.batch_size
    shapes = []  # (m, k, n) of forward, weight-gradient and input-gradient products
    for (d_out, d_in), _ in layer_shapes(config):
        shapes += [(b, d_in, d_out), (d_out, b, d_in)]
        if d_in != IMAGE_PIXELS:
            shapes.append((b, d_out, d_in))
    operands = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    for a, w in operands:
        a @ w
    start = time.perf_counter()
    for _ in range(repeats):
        for a, w in operands:
            a @ w
    return flops * repeats / (time.perf_counter() - start) / 1e9


def time_student(config: TrialConfig, data: TrialData, teacher, track_alignment: bool) -> float:
    start = time.perf_counter()
    trial = Trial(config, data, teacher, track_alignment=track_alignment)
    for _ in trial.run():
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder holding MNIST/raw (else $SUBLIM_DATA_DIR, else download)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--teacher-epochs", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = TrialConfig(epochs=args.epochs, teacher_epochs=args.teacher_epochs, device=args.device)
    data = TrialData.from_mnist(load_mnist(args.data_dir), config, torch.device(args.device))
    reference = matmul_gflops(config)

    start = time.perf_counter()
    teacher = train_teacher(config, data)
    teacher_s = time.perf_counter() - start
    tracked_s = time_student(config, data, teacher, track_alignment=True)
    untracked_s = time_student(config, data, teacher, track_alignment=False)

    teacher_flops, student_flops = trial_flops(config, track_alignment=True)
    achieved = (teacher_flops + student_flops) / (teacher_s + tracked_s) / 1e9
    print(f"threads {args.threads}, device {args.device}, epochs {args.epochs}+{args.teacher_epochs} (student+teacher)")
    print(f"teacher                          {teacher_s:7.2f} s")
    print(f"student with per-step alignment  {tracked_s:7.2f} s")
    print(f"student without alignment        {untracked_s:7.2f} s")
    print(f"full trial (teacher + student)   {teacher_s + tracked_s:7.2f} s")
    print(f"tracked / untracked student      {tracked_s / untracked_s:7.2f}x")
    print(f"trial throughput                 {achieved:7.1f} GFLOP/s "
          f"({(teacher_flops + student_flops) / 1e9:.0f} GFLOP)")
    print(f"dense matmul, model shapes       {reference:7.1f} GFLOP/s")
    print(f"fraction of matmul throughput    {achieved / reference:7.0%}")


if __name__ == "__main__":
    main()
