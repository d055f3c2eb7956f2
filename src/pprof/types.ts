/** One frame of a call stack, as a person reads it. Line 0 and file '' mean unknown. Shared between captures (internFrame): never written. */
export interface Frame {
  readonly function: string;
  readonly file: string;
  readonly line: number;
}

/**
 * How complete a record's stack is at its leaf end. Go hides the runtime
 * frames that allocated (e.g. runtime.makeBucketArray) from both profile
 * formats; only debug=1 PCs plus the symbol endpoint bring them back.
 */
export type HiddenFrames =
  /** The runtime frames are present in `stack` (debug=1 + symbols). */
  | 'resolved'
  /** PCs for runtime frames exist but could not be named. */
  | 'unresolved'
  /** The format dropped them (proto, or debug=1 `#` lines only). */
  | 'absent';

/** One allocation record: one stack and one object size, scaled estimates, whole numbers. */
export interface HeapRecord {
  /** Leaf first. */
  stack: Frame[];
  hiddenFrames: HiddenFrames;
  /**
   * Addresses of the visible frames, leaf first, as the proto's locations
   * give them (a return address - 1). With the object size they identify a
   * record across captures of one binary.
   */
  addresses: number[];
  /** Bytes per object; 0 when the profile does not say. */
  objectSize: number;
  inuseObjects: number;
  inuseBytes: number;
  allocObjects: number;
  allocBytes: number;
}

export type ProfileFormat = 'proto' | 'debug1';

export interface HeapProfile {
  format: ProfileFormat;
  /** The profile's own timestamp (proto time_nanos); undefined for debug=1 text. */
  time: Date | undefined;
  /** runtime.MemProfileRate that sampled it (bytes). */
  memProfileRate: number;
  /** Identifies the binary, so symbols can be cached per build. */
  buildId: string | undefined;
  /** runtime.Version() of the target when something recorded it (build info); decides the map implementation. */
  goVersion?: string | undefined;
  records: HeapRecord[];
}
