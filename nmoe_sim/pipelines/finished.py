"""What a run has finished, saved at every boundary and restored on resume.

Boundaries: a method's result (after its serving stage), and an NMoE pipeline's shared stages
1-2. The Recorder is saved with the results in one pickle, so a gating branch's log keeps
pointing at its pipeline's log, and records of work cut short never reach the checkpoint.
"""

from __future__ import annotations

import time
from typing import Any

from nmoe_sim.checkpoint import Checkpoint
from nmoe_sim.pipelines.context import MethodResult, RunContext
from nmoe_sim.pipelines.nmoe import NmoePipeline
from nmoe_sim.telemetry.records import Recorder


class Finished:
    """The finished methods and pipelines of a run; saved to `checkpoint` where there is one."""

    def __init__(self, checkpoint: Checkpoint | None = None) -> None:
        self.checkpoint = checkpoint
        saved = checkpoint.load_progress() if checkpoint is not None else None
        self.recorder: Recorder = saved["recorder"] if saved else Recorder()
        self.results: dict[str, MethodResult] = saved["results"] if saved else {}
        self.shared: list[str] = saved["shared"] if saved else []  # pipelines, stages 1-2 saved
        self._prior_wall_s: float = saved["wall_s"] if saved else 0.0
        self.restored = list(self.results)  # methods a resume does not run again
        self._start = time.perf_counter()

    @property
    def saved_anything(self) -> bool:
        return bool(self.results or self.shared)

    def wall_s(self) -> float:
        """Host seconds over every session of the run (the sessions' work up to their last save)."""
        return self._prior_wall_s + time.perf_counter() - self._start

    def method(self, name: str, result: MethodResult) -> None:
        self.results[name] = result
        self._save()

    def pipeline(self, ctx: RunContext, extractor: str) -> NmoePipeline:
        """The pipeline's stages 1-2: restored from the checkpoint, or trained (and saved)."""
        name = f"nmoe/{extractor}"
        if name in self.shared and self.checkpoint is not None:
            pipeline = NmoePipeline(ctx, extractor, log=self.recorder.logs[name])
            ctx.progress.stage(name, "stages 1-2 restored from the checkpoint")
            pipeline.restore(self.checkpoint.load_shared(name))
            return pipeline
        pipeline = NmoePipeline(ctx, extractor)
        pipeline.train_shared()
        if self.checkpoint is not None:
            # The pipeline's file first: progress.pkl naming it is the commit.
            self.checkpoint.save_shared(name, pipeline.shared_outputs())
            self.shared.append(name)
            self._save()
        return pipeline

    def _save(self) -> None:
        if self.checkpoint is None:
            return
        progress: dict[str, Any] = {
            "results": self.results,
            "recorder": self.recorder,
            "shared": self.shared,
            "wall_s": self.wall_s(),
        }
        self.checkpoint.save_progress(progress)
