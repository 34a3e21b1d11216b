-- Context messages between roles, their acknowledgements, and episodes of finished tasks.

CREATE TABLE cairn.context_messages (
  id          text PRIMARY KEY,            -- the sender's id: delivering twice is one message
  task_key    text NOT NULL,               -- the task it was delivered in
  from_task   text,
  from_role   text NOT NULL,
  to_role     text NOT NULL,
  type        text NOT NULL,
  content     jsonb NOT NULL,
  sent_by_workflow_id text,
  sent_by_activity_id text,
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- Set once, by the recipient step that completed with this message in its inbox.
  acked_at    timestamptz,
  acked_by_workflow_id text,
  acked_by_activity_id text
);
CREATE INDEX context_messages_inbox ON cairn.context_messages (to_role, task_key) WHERE acked_at IS NULL;
CREATE INDEX context_messages_task ON cairn.context_messages (task_key, created_at);

-- Acknowledgement is the only change a message ever sees, and it happens once.
CREATE FUNCTION cairn.context_messages_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'cairn.context_messages rows are never deleted';
  END IF;
  IF OLD.acked_at IS NOT NULL
     OR (NEW.id, NEW.task_key, NEW.from_role, NEW.to_role, NEW.type, NEW.content)
        IS DISTINCT FROM (OLD.id, OLD.task_key, OLD.from_role, OLD.to_role, OLD.type, OLD.content) THEN
    RAISE EXCEPTION 'cairn.context_messages: a message can only be acknowledged, once';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER context_messages_guard BEFORE UPDATE OR DELETE ON cairn.context_messages
  FOR EACH ROW EXECUTE FUNCTION cairn.context_messages_guard();

CREATE TABLE cairn.episodes (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  task_key     text NOT NULL,
  workflow_id  text NOT NULL UNIQUE,       -- one episode per task: recording twice is a no-op
  run_id       text NOT NULL,
  goal         text NOT NULL,
  outcome      text NOT NULL CHECK (outcome IN ('completed', 'failed', 'cancelled')),
  started_at   timestamptz NOT NULL,
  ended_at     timestamptz NOT NULL,
  step_count   int NOT NULL,
  steps        jsonb NOT NULL,
  observation_ids uuid[] NOT NULL DEFAULT '{}',
  message_count int NOT NULL,
  tags         text[] NOT NULL DEFAULT '{}',
  recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX episodes_task_key ON cairn.episodes (task_key);
CREATE INDEX episodes_ended_at ON cairn.episodes (ended_at);

GRANT SELECT, INSERT, UPDATE ON cairn.context_messages TO cairn_app;
GRANT SELECT, INSERT ON cairn.episodes TO cairn_app;
