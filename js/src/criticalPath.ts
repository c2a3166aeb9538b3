/** The critical path of a trace, as in Jaeger: from each root, the child that finished
 * last, then the child that finished before that one started, and so on, recursively.
 * Shortening any span off this path does not make the trace finish sooner. */

export function criticalPath(
  roots: number[], children: Int32Array[], start: Float64Array, end: Float64Array, traceEnd: number,
): Uint8Array<ArrayBuffer> {
  const marked = new Uint8Array(start.length);
  const endOf = (i: number) => (Number.isFinite(end[i]) ? end[i] : traceEnd);
  const stack = [...roots];
  while (stack.length) {
    const i = stack.pop()!;
    if (marked[i]) continue;
    marked[i] = 1;
    const kids = Array.from(children[i]).sort((a, b) => endOf(b) - endOf(a));
    let cursor = endOf(i);
    for (const k of kids) {
      if (endOf(k) > cursor + 1e-9 || start[k] < start[i] - 1e-9) continue;
      stack.push(k);
      cursor = start[k];
    }
  }
  return marked;
}
