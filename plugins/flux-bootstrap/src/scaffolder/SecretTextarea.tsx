import { ChangeEvent, useEffect, useMemo, useRef, useState } from 'react';
import type { FieldExtensionComponentProps } from '@backstage/plugin-scaffolder-react';
import { useTemplateSecrets } from '@backstage/plugin-scaffolder-react';
// Material UI on purpose: a form field rendered inside the scaffolder's own Material UI form.
import {
  Button,
  FormControl,
  FormHelperText,
  TextField,
  makeStyles,
} from '@material-ui/core';

const useStyles = makeStyles({
  masked: {
    fontFamily: 'monospace',
    // Hide the characters like a password field does, keeping the lines.
    WebkitTextSecurity: 'disc',
  } as Record<string, string>,
});

/** The value kept in the form (and shown on the review page): one `*` per character. */
export function maskedPlaceholder(value: string): string {
  return '*'.repeat(value.length);
}

/**
 * A multi-line secret (an SSH private key in PEM/OpenSSH form keeps its line breaks, which a
 * single-line Secret field would drop). Like `ui:field: Secret`, the value goes into the task's
 * secrets under the field's name — read it as `${{ secrets.<name> }}` — and the form only holds
 * asterisks. It can be typed, pasted or loaded from a file.
 */
export function SecretTextarea(props: FieldExtensionComponentProps<string>) {
  const { name, onChange, schema, required, disabled, rawErrors, idSchema } =
    props;
  const classes = useStyles();
  const { secrets, setSecrets } = useTemplateSecrets();
  const [value, setValue] = useState<string>(secrets[name] ?? '');
  const fileInput = useRef<HTMLInputElement>(null);
  const id = idSchema?.$id ?? name;

  // Keep the secret when navigating between form pages.
  useEffect(() => {
    if (secrets[name] !== undefined && secrets[name] !== value)
      setValue(secrets[name]);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [secrets, name]);

  const update = useMemo(
    () => (next: string) => {
      setValue(next);
      setSecrets({ [name]: next });
      onChange(next ? maskedPlaceholder(next) : undefined);
    },
    [name, onChange, setSecrets],
  );

  const loadFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    if (file) update(await file.text());
    e.target.value = '';
  };

  return (
    <FormControl
      fullWidth
      margin="normal"
      required={required}
      error={(rawErrors?.length ?? 0) > 0}
    >
      <TextField
        id={id}
        label={schema.title ?? name}
        required={required}
        disabled={disabled}
        multiline
        minRows={4}
        maxRows={12}
        variant="outlined"
        value={value}
        onChange={e => update(e.target.value)}
        autoComplete="off"
        inputProps={{
          className: classes.masked,
          spellCheck: false,
          'data-testid': `secret-textarea-${name}`,
        }}
      />
      <div>
        <Button
          size="small"
          onClick={() => fileInput.current?.click()}
          disabled={disabled}
        >
          Load from file…
        </Button>
        <input ref={fileInput} type="file" hidden onChange={loadFile} />
      </div>
      {schema.description && (
        <FormHelperText>{schema.description}</FormHelperText>
      )}
    </FormControl>
  );
}
