"""A vi-export workbook of N dossiers for the import benchmark (docs/BENCHMARKS.md):
    .parpulse/chdb-venv/bin/python tests/workbook/make_vi_export.py OUT.xlsx [N]
Dossiers received 3 to 30 days ago in five units, states spread over received, in
process, processed, returned and withdrawn; written by write_xlsx.py (openpyxl)."""
import datetime
import json
import os
import random
import subprocess
import sys


def main():
    out, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    random.seed(16)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(hours=7)
    units = ["SNV", "STP", "STC", "SCT", "SKHDT"]
    states = ["Đã tiếp nhận", "Đang xử lý", "Đã có kết quả", "Đã trả kết quả", "Rút hồ sơ"]
    channels = ["Trực tiếp", "Trực tuyến", "Bưu chính công ích"]
    header = ["STT", "Mã đơn vị", "Mã hồ sơ", "Mã thủ tục", "Ngày tiếp nhận", "Ngày hẹn trả",
              "Ngày có kết quả", "Ngày trả kết quả", "Hình thức nộp", "Trạng thái", "Ghi chú"]
    rows = [header]

    def cell(d):
        return None if d is None else {"date": d.strftime("%Y-%m-%dT%H:%M:00")}

    for i in range(count):
        received = now - datetime.timedelta(days=random.randint(3, 30), minutes=random.randint(0, 600))
        due = received + datetime.timedelta(days=random.randint(3, 12))
        state = random.randrange(5)
        done = received + datetime.timedelta(days=1) if state in (2, 3) else None
        returned = done + datetime.timedelta(hours=5) if state == 3 else None
        rows.append([i + 1, random.choice(units), f"000.00.01.H31-{i:07d}", "1.001234", cell(received),
                     due.strftime("%d/%m/%Y %H:%M"), cell(done), cell(returned), random.choice(channels),
                     states[state], ""])
    spec = {"path": out, "sheets": [{"name": "Danh sách hồ sơ", "rows": rows}]}
    writer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "write_xlsx.py")
    subprocess.run([sys.executable, writer], input=json.dumps(spec).encode(), check=True)


if __name__ == "__main__":
    main()
