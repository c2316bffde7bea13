// The live WebSocket: connects, subscribes, keeps the connection alive and reconnects forever.
//
// Why each piece exists:
// - ping every 30 s: API Gateway closes a connection after 10 min without traffic;
// - pong deadline: a dead TCP path can stay "open" for minutes, so a missing pong forces a reconnect;
// - `last_seq` on re-subscribe: the server can replay what was missed, or send a snapshot if it cannot;
// - backoff with jitter: a server restart must not be hit by every dashboard at the same instant;
// - split messages: the server keeps every message under 128 KB, so a large snapshot comes as
//   numbered parts. They are gathered and handed on as one snapshot (applied at once, no flicker);
//   updates arriving meanwhile wait for it. A split update is applied part by part (each bucket's
//   totals replace what is held), and its seq only counts once its last part is in;
// - close code 1013: the server closed us for falling behind; forget our position so the
//   re-subscribe asks for a fresh snapshot instead of a catch-up.

import { encodeClientMessage, parseServerMessage } from "../protocol";
import type { ClientMessage, ServerMessage } from "../types";
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from "./backoff";

export type ConnectionState = "connecting" | "live" | "reconnecting" | "offline";

export interface ConnectionStatus {
  state: ConnectionState;
  /** Consecutive failed attempts since the connection was last live. */
  failures: number;
  /** When reconnecting: milliseconds until the next attempt. */
  retryInMs?: number;
  /**
   * When not live: what is down, as far as the page can tell. "network": the browser itself is
   * offline; "server": the network is up but the server does not answer.
   */
  cause?: "network" | "server";
}

/** The part of the browser's WebSocket this module uses, so tests can supply a fake. */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: unknown) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface Subscription {
  /** Empty = every service. */
  services: string[];
  /** Empty = every metric. */
  metrics: string[];
}

export interface LiveConnectionOptions {
  /** Full WebSocket URL, token included (a function: read at each (re)connect, for a refreshed token). */
  url: string | (() => string);
  subscription: Subscription;
  onMessage: (message: ServerMessage) => void;
  onStatus: (status: ConnectionStatus) => void;
  /** Called with a frame that is not a valid message (it is dropped). */
  onProtocolError?: (raw: string) => void;
  /**
   * Called after a reconnect on which the server may not have replayed everything (a new
   * connection after a drop, or a restarted server): history should be reloaded.
   */
  onResync?: () => void;
  createSocket?: (url: string) => SocketLike;
  random?: () => number;
  isOnline?: () => boolean;
  backoff?: BackoffPolicy;
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  /** After this many failed attempts in a row the state reads "offline" (retries go on). */
  offlineAfterFailures?: number;
}

const OPEN = 1;
/** "Try again later": the server closed a client that fell too far behind. */
export const CLOSE_FELL_BEHIND = 1013;

type DataMessage = Extract<ServerMessage, { type: "metrics_update" | "snapshot" }>;

/** A split snapshot being gathered, and the updates that arrived meanwhile. */
interface PendingSnapshot {
  seq: number;
  parts: number;
  received: number;
  updates: DataMessage["updates"];
  traces: DataMessage["traces"];
  held: DataMessage[];
}

export class LiveConnection {
  private socket: SocketLike | null = null;
  private stopped = true;
  private failures = 0;
  private everLive = false;
  private lastSeqSeen: number | null = null;
  private lastStatus: ConnectionState | null = null;
  private pendingSnapshot: PendingSnapshot | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private pongTimer: ReturnType<typeof setTimeout> | null = null;
  private subscription: Subscription;
  private readonly createSocket: (url: string) => SocketLike;
  private readonly random: () => number;
  private readonly isOnline: () => boolean;
  private readonly backoff: BackoffPolicy;
  private readonly pingIntervalMs: number;
  private readonly pongTimeoutMs: number;
  private readonly offlineAfterFailures: number;

  constructor(private readonly options: LiveConnectionOptions) {
    this.subscription = options.subscription;
    this.createSocket =
      options.createSocket ?? ((url) => new WebSocket(url) as unknown as SocketLike);
    this.random = options.random ?? Math.random;
    this.isOnline = options.isOnline ?? (() => true);
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.pingIntervalMs = options.pingIntervalMs ?? 30_000;
    this.pongTimeoutMs = options.pongTimeoutMs ?? 10_000;
    this.offlineAfterFailures = options.offlineAfterFailures ?? 5;
  }

  /** False while a split snapshot is still arriving: live state is not yet complete. */
  get inSync(): boolean {
    return this.pendingSnapshot === null;
  }

  /** Sequence number of the last update received; sent as `last_seq` when re-subscribing. */
  get lastSeq(): number | null {
    return this.lastSeqSeen;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.emitStatus({ state: "connecting", failures: 0 });
    this.open();
  }

  stop(): void {
    this.stopped = true;
    this.clearReconnect();
    this.dropSocket();
  }

  /** Changes what this client receives; takes effect at once when connected. */
  setSubscription(subscription: Subscription): void {
    this.subscription = subscription;
    if (this.socket?.readyState === OPEN) this.sendSubscribe();
  }

  /** Skips the remaining backoff (e.g. the browser came back online). */
  retryNow(): void {
    if (this.stopped || this.reconnectTimer === null) return;
    this.clearReconnect();
    this.open();
  }

  private open(): void {
    let socket: SocketLike;
    try {
      const url = this.options.url;
      socket = this.createSocket(typeof url === "function" ? url() : url);
    } catch {
      // An invalid URL throws synchronously; treat it like a failed attempt so the UI says so.
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.sendSubscribe();
      this.startPing();
    };
    socket.onmessage = (event) => this.receive(event.data);
    socket.onerror = () => {
      // Browsers follow every error with a close event; reconnecting happens there.
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      // Closed for falling behind: what was missed is gone, ask for a snapshot on reconnect.
      if ((event as { code?: unknown } | null)?.code === CLOSE_FELL_BEHIND) this.lastSeqSeen = null;
      this.dropSocket();
      if (!this.stopped) this.scheduleReconnect();
    };
  }

  private sendSubscribe(): void {
    const message: ClientMessage = {
      type: "subscribe",
      services: this.subscription.services,
      metrics: this.subscription.metrics,
    };
    if (this.lastSeqSeen !== null) message.last_seq = this.lastSeqSeen;
    this.send(message);
  }

  private send(message: ClientMessage): void {
    try {
      this.socket?.send(encodeClientMessage(message));
    } catch {
      // A socket closing under us throws; its close event drives the reconnect.
    }
  }

  private receive(data: unknown): void {
    if (typeof data !== "string") {
      this.options.onProtocolError?.(String(data));
      return;
    }
    const message = parseServerMessage(data);
    if (message === null) {
      this.options.onProtocolError?.(data);
      return;
    }
    switch (message.type) {
      case "hello":
        // A sequence below ours means the server restarted: our position means nothing to it.
        if (this.lastSeqSeen === null || message.seq < this.lastSeqSeen) {
          this.lastSeqSeen = message.seq;
        }
        this.markLive();
        break;
      case "metrics_update":
      case "snapshot":
        this.receiveData(message);
        return;
      case "pong":
        this.clearPongDeadline();
        break;
      case "error":
        break;
    }
    this.options.onMessage(message);
  }

  /** Gathers split snapshots, holds updates that arrive while one is gathered, passes the rest on. */
  private receiveData(message: DataMessage): void {
    const part = message.part ?? 1;
    const parts = message.parts ?? 1;
    if (message.type === "snapshot" && parts > 1) {
      const pending = this.pendingSnapshot;
      if (part === 1) {
        // A new snapshot supersedes one left unfinished (its updates still wait for this one).
        this.pendingSnapshot = {
          seq: message.seq,
          parts,
          received: 0,
          updates: [],
          traces: [],
          held: pending?.held ?? [],
        };
      } else if (pending === null || pending.seq !== message.seq || pending.parts !== parts || pending.received + 1 !== part) {
        // A part out of its sequence: this snapshot cannot be completed. Reconnect and ask for a
        // fresh one (no last_seq), as after being closed for falling behind.
        this.options.onProtocolError?.(JSON.stringify({ type: message.type, seq: message.seq, part, parts }));
        this.lastSeqSeen = null;
        this.abandonSocket();
        return;
      }
      const gathering = this.pendingSnapshot;
      if (gathering === null) return;
      gathering.received += 1;
      gathering.updates.push(...message.updates);
      gathering.traces.push(...message.traces);
      if (gathering.received < gathering.parts) return;
      this.pendingSnapshot = null;
      this.deliverData({ type: "snapshot", seq: gathering.seq, updates: gathering.updates, traces: gathering.traces });
      for (const held of gathering.held) {
        if (held.seq > gathering.seq) this.deliverData(held); // older ones are in the snapshot
      }
      return;
    }
    if (this.pendingSnapshot !== null) {
      if (message.type === "snapshot") {
        // A whole snapshot replaces the unfinished one.
        const held = this.pendingSnapshot.held;
        this.pendingSnapshot = null;
        this.deliverData(message);
        for (const m of held) if (m.seq > message.seq) this.deliverData(m);
        return;
      }
      this.pendingSnapshot.held.push(message);
      return;
    }
    this.deliverData(message);
  }

  private deliverData(message: DataMessage): void {
    const part = message.part ?? 1;
    const parts = message.parts ?? 1;
    // A split update's seq counts once its last part is in: a resume then replays the rest.
    if (part === parts) {
      this.lastSeqSeen = message.seq;
      this.markLive();
    }
    this.options.onMessage(message);
  }

  private markLive(): void {
    if (this.lastStatus === "live") return;
    const isReconnect = this.everLive;
    this.failures = 0;
    this.everLive = true;
    this.emitStatus({ state: "live", failures: 0 });
    if (isReconnect) this.options.onResync?.();
  }

  private emitStatus(status: ConnectionStatus): void {
    this.lastStatus = status.state;
    this.options.onStatus(status);
  }

  private scheduleReconnect(): void {
    const delay = backoffDelay(this.failures, this.random, this.backoff);
    this.failures += 1;
    const networkDown = !this.isOnline();
    const offline = networkDown || this.failures >= this.offlineAfterFailures;
    this.emitStatus({
      state: offline ? "offline" : "reconnecting",
      failures: this.failures,
      retryInMs: delay,
      cause: networkDown ? "network" : "server",
    });
    this.clearReconnect();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.stopped) this.open();
    }, delay);
  }

  private startPing(): void {
    this.stopPing();
    this.pingTimer = setInterval(() => {
      this.send({ type: "ping" });
      if (this.pongTimer === null) {
        this.pongTimer = setTimeout(() => this.abandonSocket(), this.pongTimeoutMs);
      }
    }, this.pingIntervalMs);
  }

  /** The server stopped answering: give up on this socket without waiting for its close event. */
  private abandonSocket(): void {
    this.pongTimer = null;
    this.dropSocket();
    if (!this.stopped) this.scheduleReconnect();
  }

  private dropSocket(): void {
    this.stopPing();
    this.pendingSnapshot = null;
    const socket = this.socket;
    this.socket = null;
    if (socket === null) return;
    socket.onopen = null;
    socket.onmessage = null;
    socket.onclose = null;
    socket.onerror = null;
    try {
      socket.close();
    } catch {
      // Already closed.
    }
  }

  private stopPing(): void {
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.clearPongDeadline();
  }

  private clearPongDeadline(): void {
    if (this.pongTimer !== null) clearTimeout(this.pongTimer);
    this.pongTimer = null;
  }

  private clearReconnect(): void {
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }
}
