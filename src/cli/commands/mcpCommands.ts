/** The MCP commands, registered together (one line in index.ts). */
export { agentsCommand } from './agents';
export { mcpCommand } from './mcp';
