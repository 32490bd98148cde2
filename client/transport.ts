/**
 * How PortalClient sends one HTTP exchange. Two implementations with the same export:
 * client/transport-node.ts (node:http with a keep-alive agent, for the agent and the CLI) and
 * client/transport-web.ts (fetch, for the owner app; scripts/build-web.mjs puts it in the node
 * one's place). A transport turns a network failure into `unavailable`, a silence into `timeout`
 * and an oversized answer into `too-large`; judging the answer is PortalClient's.
 */
export interface HttpRequest {
  readonly method: 'GET' | 'POST';
  /** the path with the base URL's path in front */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array | undefined;
  readonly timeoutMs: number;
  /** an answer larger than this is refused (`too-large`) */
  readonly maxBytes: number;
}

export interface HttpResponse {
  readonly status: number;
  readonly body: Uint8Array;
  /** the status line and headers, in bytes (for measuring; 0 where the transport cannot tell) */
  readonly headerBytes: number;
}

export interface Transport {
  send(req: HttpRequest): Promise<HttpResponse>;
  close(): void;
}
