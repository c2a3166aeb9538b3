/** Arrow IPC bytes from the kernel → plain column arrays. */
import { tableFromIPC, DataType } from "apache-arrow";

export type Column = ArrayLike<any> & { [i: number]: any };
export interface Frame {
  length: number;
  columns: Record<string, any[] | Float64Array>;
}

function asBytes(buffer: ArrayBuffer | DataView | Uint8Array): Uint8Array {
  if (buffer instanceof Uint8Array) return buffer;
  if (buffer instanceof DataView) {
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }
  return new Uint8Array(buffer);
}

/** Decodes one IPC stream/file. Numbers come as Float64Array (the kernel fills nulls with
 * NaN), strings as arrays of string|null, lists as arrays of string arrays. */
export function decodeFrame(buffer: ArrayBuffer | DataView | Uint8Array): Frame {
  const table = tableFromIPC(asBytes(buffer));
  const columns: Frame["columns"] = {};
  for (const field of table.schema.fields) {
    const vector = table.getChild(field.name)!;
    if (DataType.isFloat(field.type)) {
      columns[field.name] = Float64Array.from(vector.toArray() as ArrayLike<number>);
    } else if (DataType.isList(field.type)) {
      const out: string[][] = new Array(table.numRows);
      for (let i = 0; i < table.numRows; i++) {
        const item = vector.get(i);
        out[i] = item ? Array.from(item.toArray() as ArrayLike<string>) : [];
      }
      columns[field.name] = out;
    } else {
      const out: any[] = new Array(table.numRows);
      for (let i = 0; i < table.numRows; i++) out[i] = vector.get(i);
      columns[field.name] = out;
    }
  }
  return { length: table.numRows, columns };
}
