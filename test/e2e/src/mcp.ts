import { Client } from '@modelcontextprotocol/sdk/client';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

/** The app's MCP endpoint (@backstage/plugin-mcp-actions-backend). */
export const MCP_PATH = '/api/mcp-actions/v1';

/**
 * The tools the app offers AI agents: flux-bootstrap's read-only actions and its operate actions
 * (reconcile, suspend, resume: for signed-in users with flux.bootstrap.cluster.operate only).
 */
export const FLUX_TOOLS = [
  'flux-bootstrap.get-cluster-status',
  'flux-bootstrap.get-entity-clusters',
  'flux-bootstrap.list-clusters',
  'flux-bootstrap.reconcile-cluster',
  'flux-bootstrap.resume-cluster',
  'flux-bootstrap.suspend-cluster',
] as const;

/**
 * Connects to the app's MCP server as an AI agent does: the MCP TypeScript SDK's client over
 * Streamable HTTP, with `Authorization: Bearer <token>` (a static token of app-config.mcp.yaml,
 * or a Backstage user token). Close the client when done.
 */
export async function connectMcp(
  baseUrl: string,
  token?: string,
): Promise<Client> {
  const client = new Client({
    name: 'flux-bootstrap-e2e-agent',
    version: '1.0.0',
  });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${baseUrl}${MCP_PATH}`), {
      requestInit: token
        ? { headers: { Authorization: `Bearer ${token}` } }
        : undefined,
    }),
  );
  return client;
}

/** The text an agent reads from a tool result. */
export function toolText(result: unknown): string {
  const { content } = result as { content?: { text?: string }[] };
  return (content ?? []).map(c => c.text ?? '').join('\n');
}
