"""The trainer: the paper's recipe, atomic checkpoints, bit-exact resume, DDP.

Recipe (the defaults of :class:`TrainConfig`): SGD with momentum 0.9, weight
decay 1e-4, learning rate 0.1 following a cosine schedule per step down to 0,
cross-entropy loss. Before every step the trainer calls
:func:`tvm_snn.train.set_progress` with the fraction of steps done (for EDE).

Determinism: the data order of an epoch is a permutation seeded by
``(seed, epoch)``, the augmentation of a step is seeded by ``(seed, step, rank)``
and the learning rate is a function of the step. A checkpoint therefore holds
the whole training state (model with every SNN buffer, optimizer, step, RNG
states, running metrics), and a resumed run ends with bit-identical weights.
Checkpoints are written every ``checkpoint_every`` steps and at the end of every
epoch, so a killed run loses at most one interval.

Distributed: launched by ``torchrun``, every process trains on its shard of each
epoch (``batch_size`` per process), wrapped in DistributedDataParallel with
``find_unused_parameters=True`` when a layer refines its subset (its latent
subset gets a gradient only on refinement steps). Buffers are broadcast from
rank 0 before evaluation, checkpoints and the end, so all ranks finish with the
same parameters and the same SNN state. Rank 0 writes files and the progress bar.
"""

import contextlib
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from tvm_snn.errors import ConfigError
from tvm_snn.train.checkpoint import CHECKPOINT_NAME, atomic_write, load_checkpoint, save_checkpoint
from tvm_snn.train.data import augment_batch
from tvm_snn.train.distributed import (
    all_sum,
    barrier,
    broadcast_buffers,
    distributed_session,
    gather_objects,
)
from tvm_snn.train.progress import ProgressBar
from tvm_snn.train.quantizers import SubsetWeightQuantizer, set_progress
from tvm_snn.train.subset import derive_seed, make_generator
from tvm_snn.train.validate import check_bool, check_int

TRAIN_CONFIG_VERSION = 1
DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 128
DEFAULT_LR = 0.1
DEFAULT_MOMENTUM = 0.9
DEFAULT_WEIGHT_DECAY = 1e-4
DEFAULT_CHECKPOINT_EVERY = 200
DEFAULT_LATENT_LR_SCALE = 1.0
LATENT_NAME = "latent"
LR_SCALE_KEY = "lr_scale"
METRICS_NAME = "metrics.json"

RESUME_FIELDS = (
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "seed",
    "latent_lr_scale",
)
"""Fields that must match between a run and its resume (they fix the data order and schedule)."""

ORDER_KEY = "order"
AUGMENT_KEY = "augment"
TORCH_KEY = "torch"


@contextlib.contextmanager
def torch_threads(count):
    """Set torch's intra-op thread count inside the block (``None``: leave it); restore it after."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_number(field, value, minimum, where, inclusive=True):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: {field}={value!r} must be a finite number")
    if value < minimum or (not inclusive and value == minimum):
        relation = ">=" if inclusive else ">"
        raise ConfigError(f"{where}: {field}={value} must be {relation} {minimum}")


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`fit` trains; validated on construction.

    Attributes
    ----------
    epochs : int
        Passes over the training set.
    batch_size : int
        Images per step and process.
    lr : float
        Peak learning rate of the cosine schedule.
    momentum, weight_decay : float
        SGD's.
    seed : int
        Seeds the data order, the augmentation and torch's RNG.
    latent_lr_scale : float
        The latent subsets (``SubsetWeightQuantizer.latent``) learn at
        ``latent_lr_scale`` times the learning rate. They start at ±1 and change
        the subset only when an entry changes sign, and they get a gradient only
        on refinement steps; a short run needs a larger scale for refinement to
        change anything (1.0: one learning rate, as the official code).
    checkpoint_every : int
        Steps between checkpoints (also written at every epoch end).
    max_steps : int or None
        Stop after this many steps in total, with a checkpoint (a planned
        interruption; ``resume`` continues it).
    workers : int
        Data-loading worker processes (0: load in this process).
    threads : int or None
        torch's intra-op threads during :func:`fit` (restored afterwards);
        ``None`` keeps the current setting. One thread is fastest for tiny
        models, and immune to oversubscription on a shared machine.
    progress : bool
        Show a progress bar on rank 0.
    version : int
        ``TRAIN_CONFIG_VERSION``.
    """

    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    momentum: float = DEFAULT_MOMENTUM
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    seed: int = 0
    latent_lr_scale: float = DEFAULT_LATENT_LR_SCALE
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    max_steps: int | None = None
    workers: int = 0
    threads: int | None = None
    progress: bool = True
    version: int = TRAIN_CONFIG_VERSION

    def __post_init__(self):
        where = "TrainConfig"
        if self.version != TRAIN_CONFIG_VERSION:
            raise ConfigError(f"{where}: version={self.version} is not {TRAIN_CONFIG_VERSION}")
        check_int("epochs", self.epochs, minimum=1, where=where)
        check_int("batch_size", self.batch_size, minimum=1, where=where)
        _check_number("lr", self.lr, 0, where, inclusive=False)
        _check_number("momentum", self.momentum, 0, where)
        _check_number("weight_decay", self.weight_decay, 0, where)
        check_int("seed", self.seed, minimum=0, where=where)
        _check_number("latent_lr_scale", self.latent_lr_scale, 0, where, inclusive=False)
        check_int("checkpoint_every", self.checkpoint_every, minimum=1, where=where)
        if self.max_steps is not None:
            check_int("max_steps", self.max_steps, minimum=1, where=where)
        check_int("workers", self.workers, minimum=0, where=where)
        if self.threads is not None:
            check_int("threads", self.threads, minimum=1, where=where)
        check_bool("progress", self.progress, where)

    def to_dict(self):
        """Return the fields as a plain dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model (not wrapped), in eval mode.
    history : tuple of dict
        One entry per finished epoch: ``epoch``, ``loss``, ``train_accuracy``,
        ``test_accuracy``, ``seconds``.
    steps : int
        Optimizer steps done in total.
    checkpoint : Path or None
        The latest checkpoint.
    """

    model: torch.nn.Module
    history: tuple
    steps: int
    checkpoint: Path | None

    @property
    def test_accuracy(self):
        """Test accuracy after the last finished epoch, or ``None``."""
        return self.history[-1]["test_accuracy"] if self.history else None


def parameter_groups(model, latent_lr_scale):
    """Return SGD parameter groups: the latent subsets at ``latent_lr_scale``, the rest at 1."""
    latent, rest = [], []
    for name, parameter in model.named_parameters():
        (latent if name.rpartition(".")[2] == LATENT_NAME else rest).append(parameter)
    groups = [{"params": rest, LR_SCALE_KEY: 1.0}]
    if latent:
        groups.append({"params": latent, LR_SCALE_KEY: latent_lr_scale})
    return groups


def cosine_lr(base, step, total):
    """Return the cosine-annealed learning rate at ``step`` of ``total`` (``base`` at 0, 0 at the end)."""
    return 0.5 * base * (1.0 + math.cos(math.pi * step / total))


def steps_per_epoch(samples, batch_size, world):
    """Steps each process takes per epoch (incomplete batches are dropped, but never all).

    Raises
    ------
    ConfigError
        If there are fewer samples than processes.
    """
    per_rank = samples // world
    if per_rank < 1:
        raise ConfigError(f"{samples} training samples cannot be split over {world} processes")
    return max(1, per_rank // batch_size)


def epoch_plan(samples, batch_size, seed, epoch, rank, world):
    """Return this process's batches of one epoch: int64 ``[steps, batch]`` sample indices."""
    order = torch.randperm(samples, generator=make_generator(derive_seed(seed, ORDER_KEY, epoch)))
    per_rank = samples // world
    shard = order[rank::world][:per_rank]
    steps = steps_per_epoch(samples, batch_size, world)
    batch = min(batch_size, per_rank)
    return shard[: steps * batch].reshape(steps, batch)


class _Batches(torch.utils.data.Dataset):
    """A list of index batches as a map-style data set (one item = one batch)."""

    def __init__(self, dataset, plan):
        self.dataset = dataset
        self.plan = plan

    def __len__(self):
        return len(self.plan)

    def __getitem__(self, item):
        return self.dataset.take(self.plan[item])


def _batches(dataset, plan, workers):
    if workers == 0:
        return (dataset.take(indices) for indices in plan)
    return torch.utils.data.DataLoader(
        _Batches(dataset, plan), batch_size=None, shuffle=False, num_workers=workers
    )


def _refines(model):
    return any(
        isinstance(module, SubsetWeightQuantizer) and module.refine for module in model.modules()
    )


def evaluate(model, dataset, batch_size=DEFAULT_BATCH_SIZE, device=None, session=None, workers=0):
    """Return the top-1 accuracy of ``model`` on ``dataset`` (eval mode, no refinement step).

    Parameters
    ----------
    model : torch.nn.Module
        The model (not DDP-wrapped); its mode is restored afterwards.
    dataset : object
        Has ``len`` and ``take(indices)``.
    batch_size : int
        Images per forward.
    device : torch.device, optional
        Defaults to the model's.
    session : tvm_snn.train.distributed.Session, optional
        When distributed, each rank scores a shard and the counts are summed.
    workers : int
        Data-loading worker processes.

    Returns
    -------
    float
    """
    rank, world = (0, 1) if session is None else (session.rank, session.world)
    if device is None:
        device = next(model.parameters()).device
    shard = torch.arange(len(dataset))[rank::world]
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.no_grad():
            for images, labels in _batches(dataset, shard.split(batch_size), workers):
                logits = model(images.to(device))
                correct += int((logits.argmax(1).cpu() == labels).sum())
    finally:
        model.train(was_training)
    if session is not None:
        correct, count = all_sum([correct, len(shard)], session)
    else:
        count = len(shard)
    return correct / count if count else float("nan")


def _check_resume(state, config, world, path):
    saved = state.get("train_config", {})
    for name in RESUME_FIELDS:
        if saved.get(name) != getattr(config, name):
            raise ConfigError(
                f"cannot resume {path}: {name}={getattr(config, name)!r} but the run used "
                f"{saved.get(name)!r} (it fixes the data order and the schedule)"
            )
    if state.get("world") != world:
        raise ConfigError(
            f"cannot resume {path} with {world} processes: the run used {state.get('world')}"
        )


class _Run:
    """The mutable state of one :func:`fit` call."""

    def __init__(self, model, data, config, out_dir, spec, session, device, stream):
        self.model = model
        self.data = data
        self.config = config
        self.spec = spec
        self.session = session
        self.device = device
        self.stream = sys.stderr if stream is None else stream
        self.checkpoint = None if out_dir is None else Path(out_dir) / CHECKPOINT_NAME
        self.metrics = None if out_dir is None else Path(out_dir) / METRICS_NAME
        self.optimizer = torch.optim.SGD(
            parameter_groups(model, config.latent_lr_scale),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        self.per_epoch = steps_per_epoch(len(data.train), config.batch_size, session.world)
        self.total = self.per_epoch * config.epochs
        self.step = 0
        self.history = []
        self.running = [0.0, 0.0, 0.0]
        self.started = time.monotonic()
        self.wrapped = model
        if session.distributed:
            self.wrapped = DistributedDataParallel(
                model,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=_refines(model),
            )

    def restore(self, state):
        _check_resume(state, self.config, self.session.world, self.checkpoint)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.running = list(state["running"])
        torch.set_rng_state(state["rng"][self.session.rank].cpu())

    def state(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "world": self.session.world,
            "rng": gather_objects(torch.get_rng_state(), self.session),
            "running": list(self.running),
            "history": list(self.history),
            "train_config": self.config.to_dict(),
            "model_spec": None if self.spec is None else self.spec.to_dict(),
            "data_spec": self.data.spec.to_dict(),
        }

    def save(self):
        if self.checkpoint is None:
            return
        broadcast_buffers(self.model, self.session)
        state = self.state()
        if self.session.is_root:
            save_checkpoint(state, self.checkpoint)
            text = json.dumps(self.history, indent=2).encode("utf-8")
            atomic_write(self.metrics, lambda handle: handle.write(text))
        barrier(self.session)

    def train_step(self, images, labels):
        config = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = group[LR_SCALE_KEY] * cosine_lr(config.lr, self.step, self.total)
        set_progress(self.model, self.step / self.total)
        generator = make_generator(
            derive_seed(config.seed, AUGMENT_KEY, self.step, self.session.rank)
        )
        images = augment_batch(images, self.data.spec.augment, generator).to(self.device)
        labels = labels.to(self.device)
        logits = self.wrapped(images)
        loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        with torch.no_grad():
            correct = int((logits.argmax(1) == labels).sum())
        self.running[0] += float(loss.detach()) * len(labels)
        self.running[1] += correct
        self.running[2] += len(labels)
        return float(loss.detach())

    def finish_epoch(self, epoch):
        broadcast_buffers(self.model, self.session)
        loss_sum, correct, seen = all_sum(self.running, self.session)
        accuracy = evaluate(
            self.model,
            self.data.test,
            self.config.batch_size,
            self.device,
            self.session,
            self.config.workers,
        )
        self.history.append(
            {
                "epoch": epoch + 1,
                "loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1),
                "test_accuracy": accuracy,
                "seconds": time.monotonic() - self.started,
            }
        )
        self.running = [0.0, 0.0, 0.0]
        return accuracy

    def run_epoch(self, stop):
        epoch, offset = divmod(self.step, self.per_epoch)
        config = self.config
        plan = epoch_plan(
            len(self.data.train),
            config.batch_size,
            config.seed,
            epoch,
            self.session.rank,
            self.session.world,
        )[offset:]
        bar = None
        if config.progress and self.session.is_root:
            bar = ProgressBar(
                self.per_epoch, f"epoch {epoch + 1}/{config.epochs}", self.stream, offset
            )
        self.model.train()
        for images, labels in _batches(self.data.train, plan, config.workers):
            loss = self.train_step(images, labels)
            if bar is not None:
                bar.update(loss=loss, lr=cosine_lr(config.lr, self.step, self.total))
            epoch_done = self.step % self.per_epoch == 0
            if epoch_done:
                accuracy = self.finish_epoch(epoch)
                if bar is not None:
                    bar.close(test_acc=accuracy)
                    bar = None
            if epoch_done or self.step % config.checkpoint_every == 0 or self.step >= stop:
                self.save()
            if self.step >= stop:
                break
        if bar is not None:
            bar.close()


def fit(
    model, data, config=None, out_dir=None, *, resume=False, spec=None, device=None, stream=None
):
    """Train ``model`` on ``data`` with the SNN paper's recipe.

    Parameters
    ----------
    model : torch.nn.Module
        A float or prepared model; trained in place.
    data : tvm_snn.train.data.DataBundle
        The data set (:func:`tvm_snn.train.load_dataset`).
    config : TrainConfig, optional
        Defaults to ``TrainConfig()``.
    out_dir : str or Path, optional
        Where ``last.pt`` and ``metrics.json`` go; ``None`` writes nothing.
    resume : bool
        Continue from ``out_dir/last.pt`` (same config, same number of processes).
        Without it, a new run starts and overwrites the folder's checkpoint.
    spec : tvm_snn.train.ModelSpec, optional
        Saved in checkpoints so that :func:`tvm_snn.train.load_model` (and
        ``tvm-snn export``) can rebuild the model.
    device : torch.device or str, optional
        Defaults to ``cuda:LOCAL_RANK`` when CUDA is available, else CPU.
    stream : file, optional
        Where the progress bar goes (``sys.stderr``).

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        On a bad config, ``resume`` without ``out_dir``, or a resume whose config differs.
    tvm_snn.errors.ArtifactError
        If ``resume`` finds no readable checkpoint.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"fit: config must be a TrainConfig, got {type(config).__name__}")
    if resume and out_dir is None:
        raise ConfigError("fit: resume=True needs out_dir (where the checkpoint is)")
    with (
        distributed_session() as session,
        torch.random.fork_rng(devices=[]),
        torch_threads(config.threads),
    ):
        device = torch.device(device) if device is not None else session.device
        torch.manual_seed(derive_seed(config.seed, TORCH_KEY, session.rank))
        model.to(device)
        run = _Run(model, data, config, out_dir, spec, session, device, stream)
        if resume:
            run.restore(load_checkpoint(run.checkpoint, map_location=device))
        stop = run.total if config.max_steps is None else min(run.total, config.max_steps)
        while run.step < stop:
            run.run_epoch(stop)
        broadcast_buffers(model, session)
    model.eval()
    return TrainResult(model, tuple(run.history), run.step, run.checkpoint)
