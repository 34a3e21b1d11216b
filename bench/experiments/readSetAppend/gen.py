# Writes the pgbench scripts of the experiment into the directory given (see measure.sh).
# Every script: the decided entity's version (\gset, outside the transaction), then, pipelined as
# the pool sends them, BEGIN, the pool's setup SELECT (role cairn_app, read and write grant {*}),
# the variant's statements, COMMIT. The 20 entries go as array parameters (-D, see measure.sh).
import sys
out = sys.argv[1]
setup = "SELECT set_config('role', 'cairn_app', true), set_config('cairn.read_scopes', '{*}', true), set_config('cairn.write_scopes', '{*}', true);\n"
F = "'{\"n\": 1, \"label\": \"observation 1 of a synthetic entity\", \"score\": 919, \"status\": \"open\"}'::jsonb"
H = "'68a7ba1b61ae1e44d1e16d10f48d18fd3dcb40f9f80321c7af9aaf53a4741897'"
def head(d): return f"\\set k random(1, 1000000000000)\nselect version as v from cairn.entity_heads where entity_type = 'bench' and entity_id = '{d}' \\gset\n"
def ents(d): return f":types::text[], (:ctxids || ',{d}}}')::text[], (:ctxvers || ',' || :v || '}}')::int[], :fields::text[]"
def app(d): return f"select idx, id, entity_version, recorded_at, replayed from cairn.append_observation('bench', '{d}', 'bench.item', 1, 'decision', {F}, 'task', '{{}}'::uuid[], null, null, null, 'k-{d}-' || :k, {H}, now(), 't', 'w', '', 'a-{d}-' || :k, 1, 'a', 'bench');\n"
def rec(fn, d, mode): return f"select read_set_id, refused, conflicts from cairn.{fn}('w', '', 'a-{d}-' || :k, 1, 't', 'bench', 'a', {ents(d)}, '{{bench}}'::text[], '{{{d}}}'::text[], ('{{k-{d}-' || :k || '}}')::text[], '{{{mode}}}'::text[]);\n"
def comb(fn, d, mode): return (f"select * from cairn.{fn}({ents(d)}, '{mode}', "
   f"'bench', '{d}', 'bench.item', 1, 'decision', {F}, 'task', '{{}}'::uuid[], null, null, null, 'k-{d}-' || :k, {H}, now(), 't', 'w', '', 'a-{d}-' || :k, 1, 'a', 'bench');\n")
def w(name, body):
    d = 'd-' + name
    open(f'{out}/{name}.sql', 'w').write(head(d) + "\\startpipeline\nBEGIN;\n" + setup + body(d) + "\\endpipeline\nCOMMIT;\n")
w('alone', app)
w('two', lambda d: rec('record_read_set', d, 'strict') + app(d))
w('two_fixed', lambda d: rec('rec_fixed', d, 'strict') + app(d))
w('two_off', lambda d: rec('record_read_set', d, 'off') + app(d))
w('p0', lambda d: comb('proto0', d, 'strict'))
w('comb', lambda d: comb('proto_append_with_reads', d, 'strict'))
w('comb2', lambda d: comb('proto2', d, 'strict'))
w('comb_off', lambda d: comb('proto_append_with_reads', d, 'off'))
