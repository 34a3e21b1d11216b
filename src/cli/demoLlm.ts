/**
 * `cairn demo --llm`: the analyst asks a real model instead of the scripted one. The provider
 * comes from the key in the environment (OPENAI_API_KEY, else ANTHROPIC_API_KEY; `--provider`
 * picks when both are set); its AI SDK package (`@ai-sdk/openai` / `@ai-sdk/anthropic`, the 3.x
 * line that goes with ai@6) is optional and loaded only here, so a clone without it runs the
 * scripted demo and `--llm` says which package to install.
 */
import type { LanguageModel } from 'ai';
import { UsageError } from './command';

export type LlmProvider = 'openai' | 'anthropic';

export interface LlmChoice {
  provider: LlmProvider;
  packageName: '@ai-sdk/openai' | '@ai-sdk/anthropic';
  keyVariable: 'OPENAI_API_KEY' | 'ANTHROPIC_API_KEY';
  apiKey: string;
  modelId: string;
}

const PROVIDERS: Record<LlmProvider, Omit<LlmChoice, 'apiKey' | 'modelId'> & { defaultModel: string }> = {
  openai: {
    provider: 'openai',
    packageName: '@ai-sdk/openai',
    keyVariable: 'OPENAI_API_KEY',
    defaultModel: 'gpt-4.1-mini',
  },
  anthropic: {
    provider: 'anthropic',
    packageName: '@ai-sdk/anthropic',
    keyVariable: 'ANTHROPIC_API_KEY',
    defaultModel: 'claude-haiku-4-5',
  },
};

/** Which provider, key and model `--llm` uses; a UsageError naming the variables when none fits. */
export function chooseLlm(
  env: Readonly<Record<string, string | undefined>>,
  opts: { provider?: string | undefined; model?: string | undefined } = {},
): LlmChoice {
  const keyOf = (p: LlmProvider) => env[PROVIDERS[p].keyVariable]?.trim() || undefined;
  let provider: LlmProvider;
  if (opts.provider !== undefined) {
    if (opts.provider !== 'openai' && opts.provider !== 'anthropic')
      throw new UsageError(`--provider must be openai or anthropic, not ${JSON.stringify(opts.provider)}`);
    provider = opts.provider;
    if (!keyOf(provider))
      throw new UsageError(
        `--llm --provider ${provider} needs ${PROVIDERS[provider].keyVariable} in the environment`,
      );
  } else if (keyOf('openai')) provider = 'openai';
  else if (keyOf('anthropic')) provider = 'anthropic';
  else
    throw new UsageError(
      '--llm needs OPENAI_API_KEY or ANTHROPIC_API_KEY in the environment (without --llm the demo uses its scripted model)',
    );
  const { defaultModel, ...rest } = PROVIDERS[provider];
  const modelId = opts.model?.trim() || defaultModel;
  return { ...rest, apiKey: keyOf(provider)!, modelId };
}

type Importer = (provider: LlmProvider) => Promise<unknown>;

/** Imported only when asked (the tests pass their own loader to stand for a missing package). */
const importPackage: Importer = (provider) =>
  provider === 'openai' ? import('@ai-sdk/openai') : import('@ai-sdk/anthropic');

/** Loads the provider package and makes the model; a UsageError naming the package when absent. */
export async function loadLlm(
  choice: LlmChoice,
  load: Importer = importPackage,
): Promise<Exclude<LanguageModel, string>> {
  let mod: Record<string, unknown>;
  try {
    mod = (await load(choice.provider)) as Record<string, unknown>;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND')
      throw new UsageError(
        `--llm with ${choice.keyVariable} needs ${choice.packageName}: npm install --save-dev ${choice.packageName}@^3`,
      );
    throw err;
  }
  const factoryName = choice.provider === 'openai' ? 'createOpenAI' : 'createAnthropic';
  const create = mod[factoryName];
  if (typeof create !== 'function')
    throw new UsageError(
      `${choice.packageName} has no ${factoryName}: install the 3.x line that goes with ai@6 (npm install --save-dev ${choice.packageName}@^3)`,
    );
  const provider = (create as (o: { apiKey: string }) => (id: string) => Exclude<LanguageModel, string>)({
    apiKey: choice.apiKey,
  });
  return provider(choice.modelId);
}
