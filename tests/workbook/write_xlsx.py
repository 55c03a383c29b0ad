"""Writes an Excel workbook for the workbook-import tests with openpyxl (an independent
writer: parpulse reads workbooks with calamine).

Input (JSON on stdin):
  {"path": "...", "sheets": [{"name": "...", "rows": [[cell, ...], ...]}]}
A cell is null (empty), a string, a number, or {"date": "YYYY-MM-DDTHH:MM:SS"}
(a real Excel date cell, shown as dd/mm/yyyy hh:mm), or {"error": "#N/A"}.
"""
import datetime
import json
import sys

import openpyxl


def cell_value(cell):
    if isinstance(cell, dict) and "date" in cell:
        return datetime.datetime.fromisoformat(cell["date"])
    if isinstance(cell, dict) and "error" in cell:
        return cell["error"]
    return cell


def main():
    spec = json.load(sys.stdin)
    workbook = openpyxl.Workbook(write_only=True)
    for sheet_spec in spec["sheets"]:
        sheet = workbook.create_sheet(sheet_spec["name"])
        for row in sheet_spec["rows"]:
            cells = []
            for cell in row:
                value = cell_value(cell)
                c = openpyxl.cell.WriteOnlyCell(sheet, value=value)
                if isinstance(value, datetime.datetime):
                    c.number_format = "dd/mm/yyyy hh:mm"
                if isinstance(cell, dict) and "error" in cell:
                    c.data_type = "e"
                cells.append(c)
            sheet.append(cells)
    workbook.save(spec["path"])


if __name__ == "__main__":
    main()
