/**
 * MCP agent credentials (migration 008): bearer tokens mapped to an agent identity, stored as
 * sha256 hashes. Creating, revoking and listing need the owner's login (the CLI's
 * `cairn agents`); the server resolves tokens through a definer function as cairn_app.
 */
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { checkScopePatterns } from '../shared/scopes';
import { roleSchema, taskKeySchema } from '../shared/task';
import type { Queryable } from './pool';

export const TOKEN_PREFIX = 'cairn_';

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export const agentIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$/, 'agent id: letters, digits and . _ : @ / - (max 200)');

/** Who a tool session acts as: bound by the server, never by tool input. Scopes are patterns. */
export interface AgentBinding {
  agentId: string;
  role: string;
  read: readonly string[];
  write: readonly string[];
  /** The task the agent works in by default (resolves the `task` pattern). */
  task?: string | undefined;
}

export interface NewMcpAgent {
  agentId: string;
  role: string;
  read: readonly string[];
  write: readonly string[];
  task?: string | undefined;
}

export interface McpAgentRow extends AgentBinding {
  id: string;
  tokenHint: string;
  createdAt: string;
  revokedAt: string | null;
}

/** Creates a credential; the token is returned once and never stored. */
export async function createMcpAgent(db: Queryable, a: NewMcpAgent): Promise<{ id: string; token: string }> {
  agentIdSchema.parse(a.agentId);
  roleSchema.parse(a.role);
  if (a.task !== undefined) taskKeySchema.parse(a.task);
  checkScopePatterns('read', a.read);
  checkScopePatterns('write', a.write);
  const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
  const { rows } = await db.query<{ id: string }>(
    `insert into cairn.mcp_agents (agent_id, role, read_scopes, write_scopes, task_key, token_hash, token_hint)
     values ($1, $2, $3, $4, $5, $6, $7) returning id`,
    [
      a.agentId,
      a.role,
      [...a.read],
      [...a.write],
      a.task ?? null,
      hashToken(token),
      token.slice(0, TOKEN_PREFIX.length + 6),
    ],
  );
  return { id: rows[0]!.id, token };
}

/** Revokes by credential id or by agent id (all its tokens); returns how many were revoked. */
export async function revokeMcpAgent(db: Queryable, idOrAgent: string): Promise<number> {
  const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrAgent);
  const { rowCount } = await db.query(
    `update cairn.mcp_agents set revoked_at = clock_timestamp()
      where revoked_at is null and ${isUuid ? 'id = $1::uuid' : 'agent_id = $1'}`,
    [idOrAgent],
  );
  return rowCount ?? 0;
}

export async function listMcpAgents(db: Queryable, opts: { all?: boolean } = {}): Promise<McpAgentRow[]> {
  const { rows } = await db.query<{
    id: string;
    agent_id: string;
    role: string;
    read_scopes: string[];
    write_scopes: string[];
    task_key: string | null;
    token_hint: string;
    created_at: Date;
    revoked_at: Date | null;
  }>(
    `select id, agent_id, role, read_scopes, write_scopes, task_key, token_hint, created_at, revoked_at
       from cairn.mcp_agents where $1 or revoked_at is null order by created_at`,
    [opts.all ?? false],
  );
  return rows.map((r) => ({
    id: r.id,
    agentId: r.agent_id,
    role: r.role,
    read: r.read_scopes,
    write: r.write_scopes,
    task: r.task_key ?? undefined,
    tokenHint: r.token_hint,
    createdAt: r.created_at.toISOString(),
    revokedAt: r.revoked_at?.toISOString() ?? null,
  }));
}

/** The agent a bearer token stands for; undefined when unknown or revoked. */
export async function agentForToken(db: Queryable, token: string): Promise<AgentBinding | undefined> {
  if (!token.startsWith(TOKEN_PREFIX) || token.length > 200) return undefined;
  const { rows } = await db.query<{
    agent_id: string;
    role: string;
    read_scopes: string[];
    write_scopes: string[];
    task_key: string | null;
  }>('select agent_id, role, read_scopes, write_scopes, task_key from cairn.mcp_agent_for_token($1)', [
    hashToken(token),
  ]);
  const r = rows[0];
  return r
    ? {
        agentId: r.agent_id,
        role: r.role,
        read: r.read_scopes,
        write: r.write_scopes,
        task: r.task_key ?? undefined,
      }
    : undefined;
}
