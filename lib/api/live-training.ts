// A training run's live display: the trainer's progress events become one throttled display
// (progress bar with ETA, loss plot, VRAM by category) that a notebook updates in place. The caller
// supplies where bundles go (the kernel's display/update_display_data, or any other sink).
import type { MimeBundle } from "../plots/mime-bundle.js";
import { takePlotlyLibraryBundle } from "../plots/plotly-library.js";
import type { TrainingProgress } from "../plots/progress-bar.js";
import { TrainingView } from "../plots/training-view.js";
import { sharedMemoryHistory } from "../memory/memory-history.js";
import type { TrainProgress, TrainSummary } from "../train/progress.js";
import { recordMemory } from "./views.js";

export interface DisplaySink {
  /** Shows a new output; later frames replace it through update(). */
  show(bundle: MimeBundle): void;
  update(bundle: MimeBundle): void;
}

function toView(p: TrainProgress): TrainingProgress {
  return {
    step: p.step, totalSteps: p.totalSteps, loss: p.loss, lr: p.lr, tokensPerSec: p.tokensPerSecond,
    elapsed: p.elapsedSeconds, eta: p.etaSeconds, gradNorm: p.gradNorm,
  };
}

export class LiveTraining {
  private readonly view: TrainingView;
  private shown = false;
  private last: TrainProgress | undefined;

  /** minIntervalMs: at most one frame per interval (the final frame always goes out). */
  constructor(private readonly sink: DisplaySink, minIntervalMs = 400) {
    this.view = new TrainingView({ minIntervalMs });
  }

  /** Pass as train()'s onProgress. */
  readonly onProgress = (p: TrainProgress): void => {
    this.last = p;
    recordMemory();
    const bundle = this.view.update(toView(p), sharedMemoryHistory().samples());
    if (bundle) this.emit(bundle);
  };

  /** The final frame, which stays in the saved notebook; `stopped` names an early end. */
  finish(summary?: TrainSummary, stopped?: string): void {
    if (!this.last) return;
    const final = toView(this.last);
    if (stopped) final.stopped = stopped;
    else if (summary?.interrupted) final.stopped = "interrupted";
    this.emit(this.view.finish(final, sharedMemoryHistory().samples()));
  }

  private emit(bundle: MimeBundle): void {
    if (this.shown) return this.sink.update(bundle);
    // A live display is replaced whole on every update, so the plotly library (sent once per
    // process) goes out as its own output first.
    const library = takePlotlyLibraryBundle();
    if (library) this.sink.show(library);
    this.sink.show(bundle);
    this.shown = true;
  }
}
