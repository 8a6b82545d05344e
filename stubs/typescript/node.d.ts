// The few Node.js declarations the stub uses (Debian's TypeScript ships without @types/node): written for RTT,
// typed as narrowly as the stub needs.
declare const Buffer: {
    alloc(size: number): Buffer;
    from(text: string, encoding?: "utf8" | "latin1"): Buffer;
    from(bytes: Uint8Array): Buffer;
    concat(list: readonly Uint8Array[], totalLength?: number): Buffer;
};

interface Buffer extends Uint8Array {
    subarray(start?: number, end?: number): Buffer;
    indexOf(value: number | string | Uint8Array, byteOffset?: number): number;
    equals(other: Uint8Array): boolean;
    toString(encoding?: "utf8" | "latin1", start?: number, end?: number): string;
    readUInt16LE(offset: number): number;
    readUInt32LE(offset: number): number;
    readInt32LE(offset: number): number;
    writeUInt16LE(value: number, offset: number): number;
    writeUInt32LE(value: number, offset: number): number;
}

declare const process: {
    env: Record<string, string | undefined>;
    stderr: { write(text: string): boolean };
    exit(code: number): never;
    exitCode: number | undefined;
};

declare function require(id: "net"): {
    createConnection(path: string): NetSocket;
};

interface NetSocket {
    on(event: "connect" | "end" | "close", listener: () => void): this;
    on(event: "data", listener: (chunk: Buffer) => void): this;
    on(event: "error", listener: (err: Error) => void): this;
    write(data: Uint8Array): boolean;
    destroy(): void;
}
