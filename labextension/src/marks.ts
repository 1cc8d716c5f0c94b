/**
 * The marks at the top of each notebook cell: its exercise role (instructor mode) and whether the
 * last submission graded it.
 */
import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { PanelLayout, Widget } from '@lumino/widgets';

import { roleBadge } from './roles.js';

/** The marks of one cell. Empty, it takes no space. */
export class CellMarks extends Widget {
  constructor() {
    super();
    this.addClass('jp-ExecExt-cellMarks');
  }

  setMarks(role: string | null, graded: boolean): void {
    const nodes: HTMLElement[] = [];
    if (role) {
      const badge = document.createElement('span');
      badge.className = `jp-ExecExt-roleBadge jp-ExecExt-role-${role}`;
      badge.textContent = role;
      badge.title = `Exercise role: ${role}`;
      nodes.push(badge);
    }
    if (graded) {
      const mark = document.createElement('span');
      mark.className = 'jp-ExecExt-gradedMark';
      mark.textContent = 'graded';
      mark.title = 'This cell was graded in the last submission';
      nodes.push(mark);
    }
    this.node.replaceChildren(...nodes);
    this.node.hidden = nodes.length === 0;
  }
}

/** The marks of every open notebook: role badges in instructor mode, and the graded cells. */
export class NotebookMarks {
  private _marks = new WeakMap<Cell, CellMarks>();
  // Per notebook: the models of the cells its last submission graded.
  private _graded = new WeakMap<NotebookPanel, Set<string>>();

  /** @param instructor whether role badges show (the server's mode) */
  constructor(private _instructor: () => boolean) {}

  /** Records the cells the last submission of `panel` graded, and redraws its marks. */
  setGraded(panel: NotebookPanel, cellIds: Set<string>): void {
    this._graded.set(panel, cellIds);
    this.refresh(panel);
  }

  /** Redraws the marks of `panel`'s cells, adding them to cells that have none yet. */
  refresh(panel: NotebookPanel): void {
    const gradedIds = this._graded.get(panel) ?? new Set<string>();
    for (const cell of panel.content.widgets) {
      let mark = this._marks.get(cell);
      if (!mark || mark.isDisposed) {
        mark = new CellMarks();
        (cell.layout as PanelLayout).insertWidget(0, mark);
        this._marks.set(cell, mark);
        cell.model.metadataChanged.connect(() => this.refresh(panel));
      }
      mark.setMarks(this._instructor() ? roleBadge(cell.model) : null, gradedIds.has(cell.model.id));
    }
  }
}
