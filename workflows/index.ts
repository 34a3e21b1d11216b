/** Workflow entry point bundled for the worker. Export workflow functions only. */
export { taskWorkflow } from './task';
export { agreementWorkflow } from './agreement';
export { maintenanceWorkflow } from './maintenance';
