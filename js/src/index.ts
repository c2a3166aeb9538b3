/** anywidget entry point for every halo_nb view (and the static report's mount point). */
import { App } from "./app";
import { Channel, type Model } from "./channel";
import css from "./styles.css";

const STYLE_ID = "halo-nb-style";

function ensureStyle(): void {
  if (document.getElementById(STYLE_ID)) return;
  const style = document.createElement("style");
  style.id = STYLE_ID;
  style.textContent = css;
  document.head.appendChild(style);
}

function render({ model, el }: { model: Model; el: HTMLElement }): () => void {
  ensureStyle();
  const channel = new Channel(model);
  const view = model.get("view") ?? "traces";
  const app = new App(channel, view, model.get("height") ?? 560, !model.get("static"));
  const traceId = model.get("trace_id");
  if (traceId && view === "waterfall") app.expectTrace(traceId);
  el.classList.add("halo-widget");
  el.appendChild(app.el);
  channel.request({ type: "ready" });
  if (traceId && view !== "waterfall") app.preload(traceId);
  return () => channel.dispose();
}

export default { render };
