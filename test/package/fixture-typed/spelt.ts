// Control: the same append with the field spelt right compiles.
import { defineAgent } from '@cairn-memory/cairn';
import { companyProfile } from '../src/types';

export const spelt = defineAgent({
  role: 'spelt',
  async handle(ctx) {
    ctx.append(companyProfile, 'acme', { headquarters: 'x' });
  },
});
