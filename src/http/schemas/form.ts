// Form bodies of the back-channel endpoints: string values, arrays when repeated, bounded.
import { Type } from 'typebox';

export const FormBody = Type.Record(Type.String({ maxLength: 100 }), Type.Union([Type.String({ maxLength: 8192 }), Type.Array(Type.String({ maxLength: 8192 }), { maxItems: 20 })]), {
  maxProperties: 40,
});

export const OAuthErrorResponse = Type.Object({ error: Type.String(), error_description: Type.Optional(Type.String()) });
