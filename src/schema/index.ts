import './scalars.js';
import './errors.js';
import './session.js';
import './message.js';
import './search.js';
import './backend-info.js';
import './message-mutations.js';
import './session-mutations.js';
import './session-events.js';
import './session-activity.js';
import { builder } from './builder.js';

builder.queryType({ description: 'Reads: sessions, their messages, search, and what backs the API.' });
builder.mutationType({
  description: 'Writes. Each takes one `input` and returns its payload or a typed error (`... on Error`).',
});
builder.subscriptionType({
  description: 'Live feeds, over graphql-ws (`/graphql`) or server-sent events, resumable by cursor.',
});

export const schema = builder.toSchema();
