// Must not compile: `headquaters` is not a field of company.profile.
import { defineAgent } from '@cairn-memory/cairn';
import { companyProfile } from '../src/types';

export const misspelt = defineAgent({
  role: 'misspelt',
  async handle(ctx) {
    ctx.append(companyProfile, 'acme', { headquaters: 'x' });
  },
});
