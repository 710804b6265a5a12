# main sweep point: 8% of events are celebrities (parallel data)
celeb_frac = 0.08
out_dir = 'out/celeb_08'
