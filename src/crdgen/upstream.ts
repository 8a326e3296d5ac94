/** Schemas of upstream Kubernetes types, exactly as controller-gen emits them. */
import type { JSONSchemaProps } from './schema.ts';

export function conditionSchema(): JSONSchemaProps {
  return {
    type: 'object',
    description: 'Condition contains details for one aspect of the current state of this API Resource.',
    properties: {
      lastTransitionTime: {
        type: 'string',
        format: 'date-time',
        description: 'lastTransitionTime is the last time the condition transitioned from one status to another.',
      },
      message: {
        type: 'string',
        maxLength: 32768,
        description: 'message is a human readable message indicating details about the transition.',
      },
      observedGeneration: {
        type: 'integer',
        format: 'int64',
        minimum: 0,
        description: 'observedGeneration represents the .metadata.generation that the condition was set based upon.',
      },
      reason: {
        type: 'string',
        minLength: 1,
        maxLength: 1024,
        pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
        description: "reason contains a programmatic identifier indicating the reason for the condition's last transition.",
      },
      status: { type: 'string', enum: ['True', 'False', 'Unknown'], description: 'status of the condition, one of True, False, Unknown.' },
      type: {
        type: 'string',
        maxLength: 316,
        pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
        description: 'type of condition in CamelCase or in foo.example.com/CamelCase.',
      },
    },
    required: ['lastTransitionTime', 'message', 'reason', 'status', 'type'],
  };
}

export function labelSelectorSchema(): JSONSchemaProps {
  return {
    type: 'object',
    description:
      'A label selector is a label query over a set of resources. The result of matchLabels and matchExpressions are ANDed. An empty label selector matches all objects.',
    properties: {
      matchExpressions: {
        type: 'array',
        description: 'matchExpressions is a list of label selector requirements. The requirements are ANDed.',
        items: {
          type: 'object',
          description: 'A label selector requirement is a selector that contains values, a key, and an operator that relates the key and values.',
          properties: {
            key: { type: 'string', description: 'key is the label key that the selector applies to.' },
            operator: {
              type: 'string',
              description: "operator represents a key's relationship to a set of values. Valid operators are In, NotIn, Exists and DoesNotExist.",
            },
            values: {
              type: 'array',
              description:
                'values is an array of string values. If the operator is In or NotIn, the values array must be non-empty. If the operator is Exists or DoesNotExist, the values array must be empty.',
              items: { type: 'string' },
              'x-kubernetes-list-type': 'atomic',
            },
          },
          required: ['key', 'operator'],
        },
        'x-kubernetes-list-type': 'atomic',
      },
      matchLabels: {
        type: 'object',
        description: 'matchLabels is a map of {key,value} pairs. A single {key,value} in the matchLabels map is equivalent to an element of matchExpressions, whose key field is "key", the operator is "In", and the values array contains only "value".',
        additionalProperties: { type: 'string' },
      },
    },
    'x-kubernetes-map-type': 'atomic',
  };
}
