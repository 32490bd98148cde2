/** Where feed items are pushed: an embedded MQTT broker, an external one, or nowhere. */
export interface Push {
  readonly mode: 'embedded' | 'external';
  /** the URL devices should connect to (advertised in Hello; never carries credentials) */
  readonly url: string;
  /** Publish one feed item (QoS 1, not retained) on the device's topic. Best effort: devices catch up by Download. */
  publish(device: string, payload: string | Buffer): void;
  /** connected MQTT clients (embedded), or 1/0 for the portal's own connection (external) */
  clients(): number;
  /** connections closed at accept because of a connection cap (embedded broker) */
  refusedConnections?(): number;
  healthy(): boolean;
  /** a device's MQTT password for this broker, when the broker checks portal-minted credentials (NATS operator mode) */
  readonly deviceCredential?: (device: string, expiresMs: number) => string;
  close(): Promise<void>;
}
