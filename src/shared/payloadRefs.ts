/**
 * Step payloads by reference (claim-check): a step output, or the input of a step an agent
 * proposes, above the worker's threshold is stored in Postgres (cairn.step_payloads) by the
 * step's commit transaction and travels through Temporal's history as a reference. Agents
 * (their `dependsOn` inputs, proposed steps' inputs) and CairnClient.result() get the value back
 * transparently. Sandbox-safe: the workflow only passes references along.
 *
 * A value is a reference exactly when it is an object whose `$cairnRef` is `step-payload`. An
 * agent output that happens to look like one is itself stored by reference, so every reference
 * in a history is genuine.
 */
import type { Json } from './observation';

export const PAYLOAD_REF_KIND = 'step-payload';
/** Default threshold: values whose JSON is larger than this are stored by reference. */
export const DEFAULT_PAYLOAD_INLINE_MAX_BYTES = 16 * 1024;
/** A threshold above this is refused: a few such outputs side by side reach Temporal's 2 MB limits. */
export const MAX_PAYLOAD_INLINE_MAX_BYTES = 256 * 1024;
/**
 * The workflow keeps step outputs in its state, its result and across continue-as-new: once the
 * outputs it holds inline reach this many bytes (JSON characters), it asks for every further
 * non-trivial output by reference, so a task of many steps stays within Temporal's limits too.
 */
export const WORKFLOW_INLINE_OUTPUT_BUDGET = 512 * 1024;

export interface PayloadRef {
  $cairnRef: typeof PAYLOAD_REF_KIND;
  /** cairn.step_payloads.id */
  id: string;
  /** UTF-8 bytes of the value's JSON. */
  bytes: number;
  /** sha256 (hex) of the value's canonical JSON: a resolved value is checked against it. */
  sha256: string;
}

/** What the workflow asks of a step (absent in histories recorded before claim-check: all inline). */
export interface PayloadPolicy {
  /** Store values larger than this by reference (the worker's own threshold applies if lower). */
  inlineMaxBytes: number;
}

export function isPayloadRef(value: unknown): value is PayloadRef {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    (value as { $cairnRef?: unknown }).$cairnRef === PAYLOAD_REF_KIND &&
    typeof (value as { id?: unknown }).id === 'string'
  );
}

/** Looks like a reference (the marker key at the top): must not travel inline, or it would be taken for one. */
export function looksLikePayloadRef(value: Json): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && '$cairnRef' in value;
}
