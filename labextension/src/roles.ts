/** Exercise roles of cells: the badge a cell shows and the metadata a role choice writes. */
import { cellRole, ICellLike, isReadOnly, METADATA_KEY } from './notebook.js';

/** What the role menu offers: the format's roles, Jupyter's read-only flag, and none. */
export const ROLE_CHOICES = [
  { id: 'prompt', label: 'Prompt', help: 'the task students read (usually a Markdown cell)' },
  { id: 'starter', label: 'Starter', help: 'code students start from; becomes their cell on release' },
  { id: 'solution', label: 'Solution', help: 'the reference solution; removed on release' },
  { id: 'student', label: 'Student', help: "a cell for the student's own code" },
  { id: 'read-only', label: 'Read-only', help: 'given to students, not editable, not submitted' },
  { id: 'none', label: 'No role', help: 'an ordinary cell' }
] as const;
export type RoleChoice = (typeof ROLE_CHOICES)[number]['id'];

/** The badge text of a cell, or null for a cell without a role. */
export function roleBadge(cell: ICellLike): string | null {
  const role = cellRole(cell);
  if (role) {
    return role;
  }
  return isReadOnly(cell) ? 'read-only' : null;
}

/** The cell metadata a role choice writes (the same keys `jupyter exec-ext` reads). */
export function applyRole(
  cell: {
    type: string;
    getMetadata(key: string): any;
    setMetadata(key: string, value: any): void;
    deleteMetadata(key: string): void;
  },
  choice: RoleChoice
): void {
  if (cell.type !== 'code' && !['prompt', 'none', 'read-only'].includes(choice)) {
    throw new Error(`The ${choice} role is for code cells; a Markdown cell can be a prompt.`);
  }
  const meta = cell.getMetadata(METADATA_KEY);
  const rest = meta && typeof meta === 'object' ? { ...meta } : {};
  delete rest.role;
  if (choice === 'none' || choice === 'read-only') {
    if (Object.keys(rest).length) {
      cell.setMetadata(METADATA_KEY, rest);
    } else {
      cell.deleteMetadata(METADATA_KEY);
    }
  } else {
    cell.setMetadata(METADATA_KEY, { ...rest, role: choice });
  }
  if (choice === 'read-only') {
    cell.setMetadata('editable', false);
  } else if (cell.getMetadata('editable') === false) {
    cell.deleteMetadata('editable');
  }
}
