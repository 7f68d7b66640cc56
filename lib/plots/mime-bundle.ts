// A mime bundle: what a Jupyter display_data / execute_result carries, keyed by mime type.
// lib/ produces these as plain objects; the kernel sends them unchanged.

export const PLOTLY_MIME = "application/vnd.plotly.v1+json";

export interface PlotlyFigure {
  data: Record<string, unknown>[];
  layout: Record<string, unknown>;
}

export interface MimeBundle {
  "text/plain": string;
  "text/html"?: string;
  "image/svg+xml"?: string;
  [PLOTLY_MIME]?: PlotlyFigure;
  [mime: string]: unknown;
}
