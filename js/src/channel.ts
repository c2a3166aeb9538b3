/** Custom messages between a view and its kernel-side widget (or the static report's
 * stand-in, which answers the same requests from embedded data). */

export interface Model {
  get(key: string): any;
  set(key: string, value: unknown): void;
  save_changes(): void;
  on(event: string, callback: (...args: any[]) => void): void;
  off(event: string, callback?: (...args: any[]) => void): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[]): void;
}

export type Handler = (content: any, buffers: DataView[]) => void;

export class Channel {
  private handlers = new Map<string, Set<Handler>>();
  private listener = (content: any, buffers: DataView[]) => {
    const set = this.handlers.get(content?.type);
    if (set) for (const handler of set) handler(content, buffers ?? []);
  };

  constructor(readonly model: Model) {
    model.on("msg:custom", this.listener);
  }

  on(type: string, handler: Handler): void {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type)!.add(handler);
  }

  request(content: Record<string, unknown>): void {
    this.model.send(content);
  }

  dispose(): void {
    this.model.off("msg:custom", this.listener);
    this.handlers.clear();
  }
}
