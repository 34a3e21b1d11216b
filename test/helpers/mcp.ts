/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return -- tool results are JSON from the wire, checked by expect() */
/**
 * MCP test helpers: the official SDK client over Streamable HTTP with a bearer token, and a
 * tool call that returns the parsed JSON result or the parsed refusal.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

export async function connectHttp(url: string, token: string, name = 'test-client'): Promise<Client> {
  const client = new Client({ name, version: '1.2.3' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

export type ToolOutcome =
  { ok: true; value: any } | { ok: false; error: string; next: string; details?: any };

export async function call(
  client: Client,
  name: string,
  args: Record<string, unknown>,
): Promise<ToolOutcome> {
  const r = await client.callTool({ name, arguments: args });
  const content = r.content as { type: string; text: string }[];
  const parsed = JSON.parse(content[0]!.text);
  return r.isError ? { ok: false, ...parsed } : { ok: true, value: parsed };
}

/** The value of a call that must succeed (fails the test with the refusal otherwise). */
export async function ok(client: Client, name: string, args: Record<string, unknown>): Promise<any> {
  const r = await call(client, name, args);
  if (!r.ok) throw new Error(`${name} refused: ${r.error} (${r.next})`);
  return r.value;
}
