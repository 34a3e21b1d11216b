-- 007: agents that reach Cairn over MCP (docs/mcp.md). Each bearer token maps to one agent:
-- its id, role, read and write scope patterns and optional default task. Only a sha256 of the
-- token is stored; the token itself is shown once, when `cairn agents create` makes it.
--
--   * The table is the owner's: `cairn agents create|revoke|list` run as the migrating login.
--     The application role cannot read or change it, so a compromised agent step cannot list or
--     mint tokens.
--   * The MCP server (acting as cairn_app) resolves a token only through
--     cairn.mcp_agent_for_token(hash): SECURITY DEFINER, one live row or none, never the hashes.

create table cairn.mcp_agents (
  id           uuid        primary key default gen_random_uuid(),
  agent_id     text        not null check (agent_id ~ '^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$'),
  role         text        not null check (role ~ '^[a-z][a-z0-9_-]{0,62}$'),
  read_scopes  text[]      not null,
  write_scopes text[]      not null,
  task_key     text,
  token_hash   text        not null unique check (token_hash ~ '^[0-9a-f]{64}$'),
  -- The first characters of the token, so a person can tell tokens apart in `cairn agents list`.
  token_hint   text        not null,
  created_at   timestamptz not null default clock_timestamp(),
  revoked_at   timestamptz
);
create index mcp_agents_agent_id_idx on cairn.mcp_agents (agent_id);

create function cairn.mcp_agent_for_token(p_token_hash text)
returns table (id uuid, agent_id text, role text, read_scopes text[], write_scopes text[], task_key text)
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
  select a.id, a.agent_id, a.role, a.read_scopes, a.write_scopes, a.task_key
    from cairn.mcp_agents a
   where a.token_hash = p_token_hash and a.revoked_at is null
$$;

revoke all on function cairn.mcp_agent_for_token(text) from public;
grant execute on function cairn.mcp_agent_for_token(text) to cairn_app;
