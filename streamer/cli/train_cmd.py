"""streamer train: weakly supervised training on image-level labels."""

from __future__ import annotations

HELP = "train a soft-proposal model on image-level labels (sim:..., a folder with labels.csv, ...)"


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, help="training data spec, e.g. sim:n=4000,seed=1")
    p.add_argument("--val", required=True, help="validation data spec, e.g. sim:n=400,seed=2")
    p.add_argument("--out", required=True, help="output folder (best.pt, last.pt, model.pt)")
    p.add_argument("--arch", default="compact")
    p.add_argument("--head", choices=("shared", "per_class"), default="shared")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=7)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.6)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--lr-step", type=int, default=5, help="epochs between lr ×gamma")
    p.add_argument("--lr-gamma", type=float, default=0.1)
    p.add_argument("--no-balance", action="store_true", help="plain shuffling, no class balancing")
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--init", default="", help="start from this checkpoint's weights (fine-tune)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--representation", choices=("sector", "polar"), default="",
                   help="what the frames are (default: as the data spec says; sim:...,polar=1 is polar)")


def run(args) -> int:
    from engines.training import TrainConfig, train

    cfg = TrainConfig(
        data=args.data, val=args.val, out=args.out, arch=args.arch, head=args.head,
        input_size=args.input_size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        momentum=args.momentum, weight_decay=args.weight_decay, lr_step=args.lr_step,
        lr_gamma=args.lr_gamma, balanced=not args.no_balance, hflip=not args.no_flip,
        seed=args.seed, threads=args.threads, resume=args.resume, init=args.init, progress=not args.quiet,
        representation=args.representation,
    )
    path = train(cfg)
    print(f"wrote {path}")
    return 0
