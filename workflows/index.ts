/** Workflow entry point bundled for the worker. Export workflow functions only. */
export { taskWorkflow } from './task';
export { benchNoopWorkflow } from './bench';
export { agreementWorkflow } from './agreement';
export { maintenanceWorkflow } from './maintenance';
