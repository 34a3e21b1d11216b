/**
 * `cairn demo --llm`: which provider, key and model it picks from the environment, the errors
 * naming the variables or the package to install, and the real provider packages making a model
 * (constructing one needs no network; nothing here calls it).
 */
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/command';
import { chooseLlm, loadLlm } from '../../src/cli/demoLlm';

describe('chooseLlm', () => {
  it('takes OpenAI when its key is set, else Anthropic, with a default model', () => {
    expect(chooseLlm({ OPENAI_API_KEY: 'sk-o' })).toEqual({
      provider: 'openai',
      packageName: '@ai-sdk/openai',
      keyVariable: 'OPENAI_API_KEY',
      apiKey: 'sk-o',
      modelId: 'gpt-4.1-mini',
    });
    expect(chooseLlm({ ANTHROPIC_API_KEY: 'sk-a' })).toMatchObject({
      provider: 'anthropic',
      packageName: '@ai-sdk/anthropic',
      apiKey: 'sk-a',
      modelId: 'claude-haiku-4-5',
    });
    expect(chooseLlm({ OPENAI_API_KEY: 'sk-o', ANTHROPIC_API_KEY: 'sk-a' }).provider).toBe('openai');
    // An empty or blank variable counts as unset.
    expect(chooseLlm({ OPENAI_API_KEY: '  ', ANTHROPIC_API_KEY: 'sk-a' }).provider).toBe('anthropic');
  });

  it('--provider picks between two keys, --model overrides the default', () => {
    const env = { OPENAI_API_KEY: 'sk-o', ANTHROPIC_API_KEY: 'sk-a' };
    expect(chooseLlm(env, { provider: 'anthropic', model: 'claude-sonnet-4-5' })).toMatchObject({
      provider: 'anthropic',
      apiKey: 'sk-a',
      modelId: 'claude-sonnet-4-5',
    });
    expect(chooseLlm(env, { model: 'gpt-4.1' }).modelId).toBe('gpt-4.1');
  });

  it('without a key it fails naming both variables; a named provider without its key names that one', () => {
    expect(() => chooseLlm({})).toThrow(UsageError);
    expect(() => chooseLlm({ OPENAI_API_KEY: '' })).toThrow(
      /--llm needs OPENAI_API_KEY or ANTHROPIC_API_KEY in the environment/,
    );
    expect(() => chooseLlm({ OPENAI_API_KEY: 'sk-o' }, { provider: 'anthropic' })).toThrow(
      '--llm --provider anthropic needs ANTHROPIC_API_KEY in the environment',
    );
    expect(() => chooseLlm({ OPENAI_API_KEY: 'sk-o' }, { provider: 'mistral' })).toThrow(
      '--provider must be openai or anthropic, not "mistral"',
    );
  });
});

describe('loadLlm', () => {
  it('names the package to install when it is absent', async () => {
    const missing = () =>
      Promise.reject(
        Object.assign(new Error("Cannot find module '@ai-sdk/anthropic'"), { code: 'MODULE_NOT_FOUND' }),
      );
    const choice = chooseLlm({ ANTHROPIC_API_KEY: 'sk-a' });
    await expect(loadLlm(choice, missing)).rejects.toThrow(UsageError);
    await expect(loadLlm(choice, missing)).rejects.toThrow(
      '--llm with ANTHROPIC_API_KEY needs @ai-sdk/anthropic: npm install --save-dev @ai-sdk/anthropic@^3',
    );
    // Other failures are not disguised as a missing package.
    const broken = () => Promise.reject(new Error('boom'));
    await expect(loadLlm(choice, broken)).rejects.toThrow('boom');
  });

  it('makes the chosen model with the installed provider packages (AI SDK 6 models, no call made)', async () => {
    const openai = await loadLlm(chooseLlm({ OPENAI_API_KEY: 'sk-o' }, { model: 'gpt-4.1' }));
    expect(openai).toMatchObject({ specificationVersion: 'v3', modelId: 'gpt-4.1' });
    expect(openai.provider).toMatch(/^openai/);
    const anthropic = await loadLlm(chooseLlm({ ANTHROPIC_API_KEY: 'sk-a' }));
    expect(anthropic).toMatchObject({ specificationVersion: 'v3', modelId: 'claude-haiku-4-5' });
    expect(anthropic.provider).toMatch(/^anthropic/);
  });
});
