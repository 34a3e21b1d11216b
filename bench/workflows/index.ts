/** Bundled by the bench's worker only: Cairn's workflows plus the calibration workflow. */
export * from '../../workflows';
export { benchNoopWorkflow } from './benchNoop';
